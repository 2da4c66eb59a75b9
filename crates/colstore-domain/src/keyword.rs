//! Keyword queries: what `col search --mode keyword` asks the full-text index (PRODUCT §9).
//!
//! A query is words, `"exact phrases"` and `prefix*` words. A chunk matches when it has **any** of them (ranked by
//! BM25, so chunks with more and rarer terms come first), the way a search box behaves: users type a few words and
//! expect the best matches, not only chunks that have every word.
//!
//! [`tokens`] is the one tokenisation every implementation follows (SQLite FTS5's `unicode61` with
//! `remove_diacritics 2`): maximal runs of letters and digits, lowercased, with combining accents removed, so `Café`
//! and `cafe` are the same term.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// One part of a keyword query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeywordClause {
    /// A word (already a token).
    Term(String),
    /// A word prefix (`back*`).
    Prefix(String),
    /// Consecutive words (`"write ahead log"`).
    Phrase(Vec<String>),
}

/// A parsed keyword query: the clauses, any of which makes a chunk match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeywordQuery {
    /// The clauses, in the order typed, without repeats.
    pub clauses: Vec<KeywordClause>,
}

impl KeywordQuery {
    /// Reads what a user typed. Characters that are not letters or digits separate words; an unclosed `"` runs to
    /// the end. Never fails: a query with no word has no clauses (and matches nothing).
    pub fn parse(text: &str) -> Self {
        let mut clauses = Vec::new();
        let mut push = |c: KeywordClause| {
            if !clauses.contains(&c) {
                clauses.push(c);
            }
        };
        for (i, part) in text.split('"').enumerate() {
            if i % 2 == 1 {
                let words = tokens(part);
                match words.len() {
                    0 => {}
                    1 => push(KeywordClause::Term(words.into_iter().next().unwrap_or_default())),
                    _ => push(KeywordClause::Phrase(words)),
                }
                continue;
            }
            for raw in part.split_whitespace() {
                let prefix = raw.ends_with('*');
                let words = tokens(raw);
                let last = words.len().saturating_sub(1);
                for (j, w) in words.into_iter().enumerate() {
                    push(if prefix && j == last { KeywordClause::Prefix(w) } else { KeywordClause::Term(w) });
                }
            }
        }
        Self { clauses }
    }

    /// Whether the query has no clause.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Whether a token (from [`tokens`]) is one the query looks for: a term, a phrase word, or one a prefix starts.
    pub fn mentions(&self, token: &str) -> bool {
        self.clauses.iter().any(|c| match c {
            KeywordClause::Term(t) => t == token,
            KeywordClause::Prefix(p) => token.starts_with(p.as_str()),
            KeywordClause::Phrase(words) => words.iter().any(|w| w == token),
        })
    }
}

/// The terms of `text`, in order: runs of letters and digits, lowercased, accents removed.
pub fn tokens(text: &str) -> Vec<String> {
    token_spans(text).into_iter().map(|(_, t)| t).collect()
}

/// The terms of `text` with the byte range each came from.
pub fn token_spans(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out = Vec::new();
    let mut start = None;
    let flush = |start: &mut Option<usize>, end: usize, out: &mut Vec<(std::ops::Range<usize>, String)>| {
        if let Some(s) = start.take() {
            let folded = fold(&text[s..end]);
            if !folded.is_empty() {
                out.push((s..end, folded));
            }
        }
    };
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() || (start.is_some() && is_combining_mark(c)) {
            start.get_or_insert(i);
        } else {
            flush(&mut start, i, &mut out);
        }
    }
    flush(&mut start, text.len(), &mut out);
    out
}

/// Lowercase without accents.
fn fold(word: &str) -> String {
    word.nfd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

/// `text` (whitespace flattened) around the first word the query mentions, at most about `max_chars` characters, with
/// every mentioned word marked `«like this»`.
pub fn snippet(text: &str, query: &KeywordQuery, max_chars: usize) -> String {
    let spans: Vec<std::ops::Range<usize>> = token_spans(text).into_iter().filter(|(_, t)| query.mentions(t)).map(|(r, _)| r).collect();
    // Start a little before the first match, at a word boundary.
    let first = spans.first().map_or(0, |r| r.start);
    let mut start = text[..first].char_indices().rev().nth(max_chars / 4).map_or(0, |(i, _)| i);
    while start > 0 && start < first && !text[..start].ends_with(char::is_whitespace) {
        start = text[start..].char_indices().nth(1).map_or(first, |(i, _)| start + i);
    }
    let mut out = String::new();
    let mut chars = 0;
    let mut pos = start;
    let cut = |out: &mut String, piece: &str, chars: &mut usize| -> bool {
        for c in piece.chars() {
            if *chars >= max_chars {
                return false;
            }
            let c = if c.is_whitespace() { ' ' } else { c };
            if c == ' ' && out.ends_with(' ') {
                continue;
            }
            out.push(c);
            *chars += 1;
        }
        true
    };
    let mut complete = true;
    for r in spans.iter().filter(|r| r.start >= start) {
        if !cut(&mut out, &text[pos..r.start], &mut chars) || chars >= max_chars {
            complete = false;
            break;
        }
        out.push('«');
        out.push_str(&text[r.clone()]);
        out.push('»');
        chars += r.len();
        pos = r.end;
    }
    if complete && !cut(&mut out, &text[pos..], &mut chars) {
        complete = false;
    }
    let body = out.trim().to_owned();
    let lead = if start > 0 { "…" } else { "" };
    let tail = if complete { "" } else { "…" };
    format!("{lead}{body}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_words_phrases_and_prefixes() {
        let q = KeywordQuery::parse(r#"Zebra "write-ahead LOG" back* zebra -x "" "one""#);
        assert_eq!(
            q.clauses,
            vec![
                KeywordClause::Term("zebra".into()),
                KeywordClause::Phrase(vec!["write".into(), "ahead".into(), "log".into()]),
                KeywordClause::Prefix("back".into()),
                KeywordClause::Term("x".into()),
                KeywordClause::Term("one".into()),
            ]
        );
        assert!(KeywordQuery::parse(" -- * \"\" ").is_empty());
        assert!(
            KeywordQuery::parse("\"unclosed phrase here").clauses.iter().any(|c| matches!(c, KeywordClause::Phrase(w) if w.len() == 3))
        );
    }

    #[test]
    fn tokens_fold_case_and_accents() {
        assert_eq!(tokens("Café, CAFE; naïve 42x ß"), ["cafe", "cafe", "naive", "42x", "ß"]);
        assert_eq!(tokens("e\u{301}te\u{301}"), ["ete"]);
        assert!(tokens("— ... !!").is_empty());
    }

    #[test]
    fn snippets_mark_what_the_query_mentions() {
        let q = KeywordQuery::parse("quasar zebr*");
        let s = snippet("Nothing here.\n\nA  Zebra met a QUASAR at dawn.", &q, 200);
        assert_eq!(s, "Nothing here. A «Zebra» met a «QUASAR» at dawn.");
        let long = format!("{} quasar {}", "word ".repeat(200), "tail ".repeat(200));
        let s = snippet(&long, &q, 60);
        assert!(s.starts_with('…') && s.ends_with('…') && s.contains("«quasar»"), "{s}");
        assert!(s.chars().count() <= 70, "{s}");
        assert_eq!(snippet("no match at all", &q, 8), "no match…");
    }
}
