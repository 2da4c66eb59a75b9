//! The filter language of `--where`: one grammar for `col ls`, `col search` and `col export` (PRODUCT §9).
//!
//! ```text
//! expr      := or
//! or        := and ("or" and)*
//! and       := unary ("and" unary)*
//! unary     := "not" unary | "(" or ")" | atom
//! atom      := FIELD ("=" | "!=") VALUE | FIELD ("<" | "<=" | ">" | ">=") NUMBER
//!            | FIELD "in" VALUE ("," VALUE)* | FIELD "in" "(" VALUE ("," VALUE)* ")"
//!            | FIELD "exists" | FIELD "missing"
//!            | "tag:" TAG | "key:" PREFIX
//!            | ("created:" | "updated:") (("<" | "<=" | ">" | ">=") TIME | TIME ".." TIME)
//! ```
//!
//! Keywords are case-insensitive. `FIELD` is a metadata path (`lang`, `author.name`); a bare `VALUE` is typed
//! (`true`, `false`, integers) and a `"quoted"` one is always a string (JSON escapes). Qualifiers (`tag:`, `key:`,
//! `created:`, `updated:`) select on what every document has, not on its metadata, so a metadata field named `created`
//! is still reached with `created=…`. [`DocFilter::matches`] is the reference semantics; metadata atoms mean exactly
//! what [`Condition::matches`] says.

use serde::{Deserialize, Serialize};

use crate::{Condition, DocumentMeta, FieldPath, Filter, MatchValue, Range, Tag, TimeRange, Timestamp, ValidationError};

/// A parsed `--where` expression over documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocFilter {
    /// Every part matches (an empty list matches everything).
    All(Vec<DocFilter>),
    /// At least one part matches (an empty list matches nothing).
    Any(Vec<DocFilter>),
    /// The part does not match.
    Not(Box<DocFilter>),
    /// A condition on the document's metadata.
    Meta(Condition),
    /// The document has the tag.
    Tag(Tag),
    /// The document's key starts with this text (a literal byte prefix).
    KeyPrefix(String),
    /// The document was created in the range.
    Created(TimeRange),
    /// The document was last changed in the range.
    Updated(TimeRange),
    /// The document's sync state is this one (the sync ledger's: pending, synced or failed).
    State(crate::ports::SyncState),
}

impl Default for DocFilter {
    fn default() -> Self {
        Self::All(Vec::new())
    }
}

impl DocFilter {
    /// Whether the filter matches every document.
    pub fn is_everything(&self) -> bool {
        matches!(self, Self::All(parts) if parts.is_empty())
    }

    /// Whether the document matches, for a filter without `state:` ([`DocFilter::has_state`]); a `state:` condition
    /// never holds here (use [`DocFilter::matches_in`] with the ledger's states).
    pub fn matches(&self, d: &DocumentMeta) -> bool {
        self.matches_in(d, None)
    }

    /// Whether the document, whose sync state is `state`, matches. The reference semantics every translation is
    /// tested against.
    pub fn matches_in(&self, d: &DocumentMeta, state: Option<crate::ports::SyncState>) -> bool {
        match self {
            Self::All(parts) => parts.iter().all(|p| p.matches_in(d, state)),
            Self::Any(parts) => parts.iter().any(|p| p.matches_in(d, state)),
            Self::Not(p) => !p.matches_in(d, state),
            Self::Meta(c) => c.matches(&d.metadata.0),
            Self::Tag(t) => d.tags.0.contains(t),
            Self::KeyPrefix(p) => d.key.as_str().starts_with(p.as_str()),
            Self::Created(r) => r.contains(d.created_at),
            Self::Updated(r) => r.contains(d.updated_at),
            Self::State(s) => state == Some(*s),
        }
    }

    /// Whether a `state:` condition occurs anywhere in the filter (it needs the sync ledger to evaluate).
    pub fn has_state(&self) -> bool {
        match self {
            Self::All(parts) | Self::Any(parts) => parts.iter().any(DocFilter::has_state),
            Self::Not(p) => p.has_state(),
            Self::State(_) => true,
            Self::Meta(_) | Self::Tag(_) | Self::KeyPrefix(_) | Self::Created(_) | Self::Updated(_) => false,
        }
    }

    /// Both filters must match.
    #[must_use]
    pub fn and(self, other: DocFilter) -> DocFilter {
        match (self, other) {
            (a, b) if a.is_everything() => b,
            (a, b) if b.is_everything() => a,
            (Self::All(mut a), Self::All(b)) => {
                a.extend(b);
                Self::All(a)
            }
            (Self::All(mut a), b) => {
                a.push(b);
                Self::All(a)
            }
            (a, b) => Self::All(vec![a, b]),
        }
    }

    /// The same filter as a metadata [`Filter`], when it has only metadata atoms (what a vector index can evaluate).
    pub fn as_metadata_filter(&self) -> Option<Filter> {
        let cond = |p: &DocFilter| -> Option<Condition> {
            match p {
                Self::Meta(c) => Some(c.clone()),
                other => other.as_metadata_filter().map(|f| Condition::Nested(Box::new(f))),
            }
        };
        match self {
            Self::All(parts) => Some(Filter { must: parts.iter().map(cond).collect::<Option<_>>()?, ..Filter::default() }),
            // `should` with no conditions matches everything; an empty `Any` matches nothing.
            Self::Any(parts) if parts.is_empty() => None,
            Self::Any(parts) => Some(Filter { should: parts.iter().map(cond).collect::<Option<_>>()?, ..Filter::default() }),
            Self::Not(p) => Some(Filter { must_not: vec![cond(p)?], ..Filter::default() }),
            Self::Meta(c) => Some(Filter { must: vec![c.clone()], ..Filter::default() }),
            Self::Tag(_) | Self::KeyPrefix(_) | Self::Created(_) | Self::Updated(_) | Self::State(_) => None,
        }
    }

    /// A metadata filter every matching document passes: the whole filter when it is metadata-only, else its
    /// top-level metadata-only parts. A vector index evaluates it; the rest is checked on each hit's document.
    pub fn metadata_prefilter(&self) -> Filter {
        if let Some(f) = self.as_metadata_filter() {
            return f;
        }
        match self {
            Self::All(parts) => Filter {
                must: parts.iter().filter_map(|p| p.as_metadata_filter()).map(|f| Condition::Nested(Box::new(f))).collect(),
                ..Filter::default()
            },
            _ => Filter::default(),
        }
    }

    /// Parses one `--where` expression; relative times (`7d`) count back from `now`.
    ///
    /// # Errors
    /// A [`ValidationError`] saying at which column what was expected, and how to write it.
    pub fn parse(expr: &str, now: Timestamp) -> Result<DocFilter, ValidationError> {
        let tokens = lex(expr)?;
        let mut p = Parser { src: expr, tokens, pos: 0, now };
        let f = p.or()?;
        match p.peek() {
            None => Ok(f),
            Some(t) if t.kind == Tok::RParen => Err(p.error_at(t.col, "this `)` has no matching `(`; remove it or add a `(` before")),
            Some(t) => {
                let hint = match &t.kind {
                    Tok::Word(_) | Tok::Str(_) => {
                        "; join conditions with `and` or `or`, and quote a value that has spaces: title=\"two words\""
                    }
                    _ => "",
                };
                Err(p.error_at(t.col, &format!("expected `and`, `or` or the end, found {}{hint}", t.describe())))
            }
        }
    }

    /// Parses every expression and joins them with `and` (repeated `--where` flags).
    ///
    /// # Errors
    /// The first expression's error.
    pub fn parse_all<S: AsRef<str>>(exprs: impl IntoIterator<Item = S>, now: Timestamp) -> Result<DocFilter, ValidationError> {
        exprs.into_iter().try_fold(DocFilter::default(), |acc, e| Ok(acc.and(DocFilter::parse(e.as_ref(), now)?)))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Op(&'static str),
    Word(String),
    Str(String),
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    /// 1-based column (in characters) where the token starts.
    col: usize,
}

impl Token {
    fn describe(&self) -> String {
        match &self.kind {
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Op(op) => format!("`{op}`"),
            Tok::Word(w) => format!("`{w}`"),
            Tok::Str(s) => format!("{s:?}"),
        }
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(&self.kind, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

const SYNTAX_HELP: &str = "see `col ls --help` for the filter language";

fn error(expr: &str, col: usize, reason: &str) -> ValidationError {
    ValidationError::new("filter", expr, format!("at column {col}: {reason}"))
}

fn lex(src: &str) -> Result<Vec<Token>, ValidationError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word_end = |c: char| c.is_whitespace() || "()=!<>,\"".contains(c);
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let two = chars.get(i + 1).copied();
        let (kind, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '=' if two == Some('=') => return Err(error(src, col, "`==` is not an operator; one `=` compares for equality (lang=en)")),
            '=' => (Tok::Op("="), 1),
            '!' if two == Some('=') => (Tok::Op("!="), 2),
            '!' => return Err(error(src, col, "`!` alone is not an operator; write `!=` to compare or `not` to negate")),
            '<' if two == Some('=') => (Tok::Op("<="), 2),
            '<' => (Tok::Op("<"), 1),
            '>' if two == Some('=') => (Tok::Op(">="), 2),
            '>' => (Tok::Op(">"), 1),
            '"' => {
                // A JSON string: find its closing quote, skipping escaped characters.
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '"' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
                if j >= chars.len() {
                    return Err(error(src, col, "this quoted value has no closing `\"`"));
                }
                let raw: String = chars[i..=j].iter().collect();
                let text: String = serde_json::from_str(&raw)
                    .map_err(|e| error(src, col, &format!("this quoted value is not a valid JSON string ({e})")))?;
                (Tok::Str(text), j + 1 - i)
            }
            _ => {
                let mut j = i;
                while j < chars.len() && !word_end(chars[j]) {
                    j += 1;
                }
                // A qualifier (`created:`) may be followed directly by an operator (`created:>=7d`).
                (Tok::Word(chars[i..j].iter().collect()), j - i)
            }
        };
        out.push(Token { kind, col });
        i += len;
    }
    Ok(out)
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    now: Timestamp,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// The column just past the last token (where a missing token was expected).
    fn end_col(&self) -> usize {
        self.src.chars().count() + 1
    }

    fn error_at(&self, col: usize, reason: &str) -> ValidationError {
        error(self.src, col, reason)
    }

    /// An error at the next token, or at the end when there is none.
    fn expected(&self, what: &str) -> ValidationError {
        match self.peek() {
            Some(t) => self.error_at(t.col, &format!("expected {what}, found {}", t.describe())),
            None => self.error_at(self.end_col(), &format!("expected {what}, found the end")),
        }
    }

    fn or(&mut self) -> Result<DocFilter, ValidationError> {
        let mut parts = vec![self.and()?];
        while self.peek().is_some_and(|t| t.keyword("or")) {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { DocFilter::Any(parts) })
    }

    fn and(&mut self) -> Result<DocFilter, ValidationError> {
        let mut parts = vec![self.unary()?];
        while self.peek().is_some_and(|t| t.keyword("and")) {
            self.pos += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { DocFilter::All(parts) })
    }

    fn unary(&mut self) -> Result<DocFilter, ValidationError> {
        let Some(t) = self.peek().cloned() else { return Err(self.expected("a condition such as lang=en")) };
        if t.keyword("not") {
            self.pos += 1;
            return Ok(DocFilter::Not(Box::new(self.unary()?)));
        }
        if t.kind == Tok::LParen {
            self.pos += 1;
            let inner = self.or()?;
            return match self.peek() {
                Some(c) if c.kind == Tok::RParen => {
                    self.pos += 1;
                    Ok(inner)
                }
                _ => Err(self.expected(&format!("`)` to close the `(` at column {}", t.col))),
            };
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<DocFilter, ValidationError> {
        let Some(t) = self.next() else { return Err(self.expected("a condition such as lang=en")) };
        let Tok::Word(word) = &t.kind else {
            self.pos -= 1;
            return Err(self.expected("a condition such as lang=en"));
        };
        if ["and", "or"].iter().any(|k| t.keyword(k)) {
            return Err(self.error_at(t.col, &format!("expected a condition before `{word}`")));
        }
        if let Some((qualifier, rest)) = word.split_once(':') {
            return self.qualified(&t, qualifier, rest);
        }
        let key = FieldPath::parse(word)
            .map_err(|e| self.error_at(t.col, &format!("{word:?} is not a metadata field: {}; {SYNTAX_HELP}", e.reason)))?;
        let Some(op) = self.next() else {
            return Err(
                self.error_at(self.end_col(), &format!("expected an operator after `{word}`: =, !=, <, <=, >, >=, in, exists or missing"))
            );
        };
        if op.keyword("exists") {
            return Ok(DocFilter::Not(Box::new(DocFilter::Meta(Condition::IsEmpty { key }))));
        }
        if op.keyword("missing") {
            return Ok(DocFilter::Meta(Condition::IsEmpty { key }));
        }
        if op.keyword("in") {
            let any = self.value_list(word)?;
            return Ok(DocFilter::Meta(Condition::MatchAny { key, any }));
        }
        let Tok::Op(sym) = op.kind else {
            return Err(self.error_at(
                op.col,
                &format!("expected an operator after `{word}` (=, !=, <, <=, >, >=, in, exists or missing), found {}", op.describe()),
            ));
        };
        let value = self.value(&format!("a value after `{sym}`"))?;
        match sym {
            "=" => Ok(DocFilter::Meta(Condition::Match { key, value: value.1 })),
            "!=" => Ok(DocFilter::Not(Box::new(DocFilter::Meta(Condition::Match { key, value: value.1 })))),
            _ => {
                let (col, raw) = (value.0, value.2);
                let n = raw
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| self.error_at(col, &format!("{raw:?} is not a number; `{sym}` compares numbers (year>=2020)")))?;
                let mut range = Range::default();
                match sym {
                    ">" => range.gt = Some(n),
                    ">=" => range.gte = Some(n),
                    "<" => range.lt = Some(n),
                    _ => range.lte = Some(n),
                }
                Ok(DocFilter::Meta(Condition::Range { key, range }))
            }
        }
    }

    /// A value: its column, its typed form and its text.
    fn value(&mut self, what: &str) -> Result<(usize, MatchValue, String), ValidationError> {
        match self.peek().cloned() {
            Some(Token { kind: Tok::Word(w), col }) => {
                self.pos += 1;
                Ok((col, MatchValue::from_user(&w), w))
            }
            Some(Token { kind: Tok::Str(s), col }) => {
                self.pos += 1;
                Ok((col, MatchValue::Text(s.clone()), s))
            }
            _ => Err(self.expected(what)),
        }
    }

    fn value_list(&mut self, field: &str) -> Result<Vec<MatchValue>, ValidationError> {
        let example = format!("write it like `{field} in en,fr` or `{field} in (en, fr)`");
        let parenthesised = self.peek().is_some_and(|t| t.kind == Tok::LParen);
        if parenthesised {
            self.pos += 1;
        }
        let mut any = vec![self.value(&format!("the value list after `in`; {example}"))?.1];
        while self.peek().is_some_and(|t| t.kind == Tok::Comma) {
            self.pos += 1;
            any.push(self.value(&format!("a value after `,`; {example}"))?.1);
        }
        if parenthesised {
            match self.peek() {
                Some(t) if t.kind == Tok::RParen => self.pos += 1,
                _ => return Err(self.expected(&format!("`,` or `)` in the value list; {example}"))),
            }
        }
        Ok(any)
    }

    fn qualified(&mut self, t: &Token, qualifier: &str, rest: &str) -> Result<DocFilter, ValidationError> {
        let rest_col = t.col + qualifier.chars().count() + 1;
        // The argument is the rest of the word, or (when the word ends at the colon) the quoted value after it.
        let arg = |p: &mut Self, what: &str| -> Result<(usize, String), ValidationError> {
            if !rest.is_empty() {
                return Ok((rest_col, rest.to_owned()));
            }
            match p.peek().cloned() {
                Some(Token { kind: Tok::Str(s), col }) => {
                    p.pos += 1;
                    Ok((col, s))
                }
                _ => Err(p.expected(what)),
            }
        };
        match qualifier.to_ascii_lowercase().as_str() {
            "tag" => {
                let (col, name) = arg(self, "a tag after `tag:` (tag:draft)")?;
                let tag = Tag::parse(&name).map_err(|e| self.error_at(col, &format!("{name:?} is not a tag: {}", e.reason)))?;
                Ok(DocFilter::Tag(tag))
            }
            "key" => {
                let (_, prefix) = arg(self, "a key prefix after `key:` (key:notes/)")?;
                Ok(DocFilter::KeyPrefix(prefix))
            }
            which @ ("created" | "updated") => {
                let range = self.time_range(which, rest, rest_col)?;
                Ok(if which == "created" { DocFilter::Created(range) } else { DocFilter::Updated(range) })
            }
            "state" => {
                let (col, state) = arg(self, "a sync state after `state:` (state:pending, state:synced or state:failed)")?;
                use crate::ports::SyncState;
                match state.to_ascii_lowercase().as_str() {
                    "pending" => Ok(DocFilter::State(SyncState::Pending)),
                    "synced" => Ok(DocFilter::State(SyncState::Synced)),
                    "failed" => Ok(DocFilter::State(SyncState::Failed)),
                    _ => {
                        Err(self
                            .error_at(col, &format!("{state:?} is not a sync state; write state:pending, state:synced or state:failed")))
                    }
                }
            }
            _ => Err(self.error_at(
                t.col,
                &format!(
                    "unknown qualifier `{qualifier}:`; the qualifiers are tag:, key:, created:, updated: and state:, and a \
                     metadata field is compared with an operator ({qualifier}=VALUE)"
                ),
            )),
        }
    }

    fn time_range(&mut self, which: &str, rest: &str, rest_col: usize) -> Result<TimeRange, ValidationError> {
        let how = format!("write {which}:>=7d, {which}:<2026-01-01 or {which}:2026-01-01..2026-02-01");
        let time = |p: &Self, col: usize, s: &str| {
            Timestamp::parse_user(s, p.now).map_err(|e| p.error_at(col, &format!("{s:?} is not a time: {}", e.reason)))
        };
        if !rest.is_empty() {
            let Some((a, b)) = rest.split_once("..") else {
                return Err(self.error_at(rest_col, &format!("a time needs a comparison or a range; {how}")));
            };
            let since = time(self, rest_col, a)?;
            let until = time(self, rest_col + a.chars().count() + 2, b)?;
            return Ok(TimeRange { since: Some(since), until: Some(until) });
        }
        let op = match self.peek().cloned() {
            Some(Token { kind: Tok::Op(op), .. }) if op != "=" && op != "!=" => {
                self.pos += 1;
                op
            }
            _ => return Err(self.expected(&format!("a comparison after `{which}:`; {how}"))),
        };
        let (col, _, raw) = self.value(&format!("a time after `{op}`; {how}"))?;
        let t = time(self, col, &raw)?;
        let after = |t: Timestamp| Timestamp::from_millis(t.as_millis().saturating_add(1));
        Ok(match op {
            ">=" => TimeRange { since: Some(t), until: None },
            ">" => TimeRange { since: Some(after(t)), until: None },
            "<" => TimeRange { since: None, until: Some(t) },
            _ => TimeRange { since: None, until: Some(after(t)) },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CollectionName, ContentHash, DocKey, Metadata, Tags};
    use rstest::rstest;
    use serde_json::json;

    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);
    const DAY: i64 = 86_400_000;

    fn doc() -> DocumentMeta {
        DocumentMeta {
            collection: CollectionName::parse("notes").unwrap(),
            key: DocKey::parse("notes/a.md").unwrap(),
            content_hash: ContentHash::of(b"x"),
            size: 1,
            metadata: Metadata(
                json!({"lang": "en", "year": 2021, "draft": false, "tags": ["a", "b"], "created": 5, "author": {"name": "Ann"}, "title": "two words"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            tags: Tags::parse_all(["home", "work"]).unwrap(),
            version: 1,
            created_at: Timestamp::from_millis(NOW.as_millis() - 10 * DAY),
            updated_at: Timestamp::from_millis(NOW.as_millis() - DAY),
        }
    }

    #[rstest]
    #[case("lang=en", true)]
    #[case("lang = en", true)]
    #[case("LANG=en", false)]
    #[case("lang=en and year>2020", true)]
    #[case("lang=en AND year>2021", false)]
    #[case("lang=fr or year>=2021", true)]
    #[case("not lang=fr", true)]
    #[case("NOT (lang=en or lang=fr)", false)]
    #[case("lang=en and (year<2000 or draft=false)", true)]
    #[case("(lang=en and year<2000) or draft=true", false)]
    #[case("lang!=fr", true)]
    #[case("nope!=x", true)]
    #[case("lang in fr,en", true)]
    #[case("lang in (fr, de)", false)]
    #[case("tags=b", true)]
    #[case("author.name=Ann", true)]
    #[case("author exists and nope missing", true)]
    #[case("title=\"two words\"", true)]
    #[case("year=\"2021\"", false)]
    #[case("created=5", true)]
    #[case("tag:home", true)]
    #[case("tag:home and not tag:work", false)]
    #[case("tag:play or tag:work", true)]
    #[case("key:notes/", true)]
    #[case("key:notes/b", false)]
    #[case("key:\"notes/a\"", true)]
    #[case("created:<7d", true)]
    #[case("created:>=7d", false)]
    #[case("updated:>=7d", true)]
    #[case("updated:>2d and lang=en", true)]
    #[case("updated:2000-01-01..2001-01-01", false)]
    fn expressions_mean_what_they_say(#[case] expr: &str, #[case] expected: bool) {
        let f = DocFilter::parse(expr, NOW).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(f.matches(&doc()), expected, "{expr} → {f:?}");
    }

    #[rstest]
    #[case("a=1 and (b>", 12, "expected a value after `>`")]
    #[case("a=1 and (b>2", 13, "`)` to close the `(` at column 9")]
    #[case("a=1 b=2", 5, "expected `and`, `or` or the end")]
    #[case("title=two words", 11, "quote a value")]
    #[case("lang==en", 5, "one `=`")]
    #[case("lang", 5, "expected an operator")]
    #[case("=en", 1, "expected a condition")]
    #[case("year>abc", 6, "is not a number")]
    #[case("lang in", 8, "the value list after `in`")]
    #[case("lang in en,", 12, "a value after `,`")]
    #[case("a=1 and", 8, "expected a condition")]
    #[case("and a=1", 1, "expected a condition before `and`")]
    #[case("a=1)", 4, "no matching `(`")]
    #[case("colour:red", 1, "unknown qualifier `colour:`")]
    #[case("tag:a,b", 6, "expected `and`, `or` or the end")]
    #[case("created:2026-01-01", 9, "needs a comparison or a range")]
    #[case("updated:>=yesterday", 11, "is not a time")]
    #[case("x=\"open", 3, "no closing")]
    #[case("a b=c", 3, "expected an operator after `a`")]
    #[case("x>NaN", 3, "is not a number")]
    fn errors_say_where_and_what(#[case] expr: &str, #[case] col: usize, #[case] says: &str) {
        let e = DocFilter::parse(expr, NOW).unwrap_err().to_string();
        assert!(e.contains(&format!("at column {col}:")), "{expr}: {e}");
        assert!(e.contains(says), "{expr}: {e}");
    }

    #[test]
    fn repeated_expressions_are_joined_with_and() {
        let f = DocFilter::parse_all(["lang=en", "tag:home or tag:x", "year>1"], NOW).unwrap();
        assert!(f.matches(&doc()));
        assert!(matches!(&f, DocFilter::All(parts) if parts.len() == 3), "{f:?}");
        assert!(!DocFilter::parse_all(["lang=en", "year<1"], NOW).unwrap().matches(&doc()));
        assert!(DocFilter::parse_all(Vec::<String>::new(), NOW).unwrap().is_everything());
    }

    #[rstest]
    #[case("lang=en")]
    #[case("lang=fr or not (year<2000 and draft=false)")]
    #[case("author exists and lang in en,fr")]
    #[case("not lang!=en")]
    fn metadata_only_filters_become_the_same_index_filter(#[case] expr: &str) {
        let f = DocFilter::parse(expr, NOW).unwrap();
        let g = f.as_metadata_filter().expect("metadata only");
        let d = doc();
        assert_eq!(g.matches(&d.metadata.0), f.matches(&d), "{expr}");
    }

    #[test]
    fn the_prefilter_keeps_only_what_every_match_passes() {
        let f = DocFilter::parse("lang=fr and tag:home", NOW).unwrap();
        assert!(f.as_metadata_filter().is_none());
        let pre = f.metadata_prefilter();
        assert!(!pre.matches(&doc().metadata.0), "lang=fr kept: {pre:?}");
        let f = DocFilter::parse("lang=fr or tag:home", NOW).unwrap();
        assert!(f.metadata_prefilter().is_empty(), "an `or` with a qualifier cannot be pushed down");
    }
}
