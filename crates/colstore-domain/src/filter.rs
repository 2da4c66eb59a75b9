//! Payload and metadata filters: the common subset of Qdrant and Weaviate (ADAPTERS.md).
//!
//! The same [`Filter`] selects documents by metadata (`col ls --where`) and points by payload (`col search --where`).
//! [`Filter::matches`] is the reference semantics; the SQLite translation, the embedded index and every fake are
//! tested against it. The rules follow Qdrant:
//! - a missing key (or `null`) never matches `Match`, `MatchAny` or `Range`;
//! - when the field holds an array, a condition matches if any element matches;
//! - `must` needs all, `should` needs at least one (when non-empty), `must_not` needs none.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{FieldPath, ValidationError};

/// A value matched exactly. Floats are not matchable (use a [`Range`]), as in Qdrant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MatchValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Integer(i64),
    /// A string (keyword match: whole value, case-sensitive).
    Text(String),
}

impl MatchValue {
    /// Reads what a user typed: `true`/`false`, an integer, a quoted JSON string, or else the raw text.
    pub fn from_user(s: &str) -> Self {
        match s {
            "true" => return Self::Bool(true),
            "false" => return Self::Bool(false),
            _ => {}
        }
        if let Ok(i) = s.parse::<i64>() {
            return Self::Integer(i);
        }
        if s.len() >= 2
            && s.starts_with('"')
            && let Ok(Value::String(t)) = serde_json::from_str::<Value>(s)
        {
            return Self::Text(t);
        }
        Self::Text(s.to_owned())
    }

    fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (Self::Bool(a), Value::Bool(b)) => a == b,
            (Self::Integer(a), Value::Number(n)) => n.as_i64() == Some(*a),
            (Self::Text(a), Value::String(b)) => a == b,
            _ => false,
        }
    }
}

/// A numeric range; unset bounds are open.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Range {
    /// Greater than.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    /// Greater than or equal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    /// Less than.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    /// Less than or equal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
}

impl Range {
    /// Whether `x` lies in the range.
    pub fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b) && self.gte.is_none_or(|b| x >= b) && self.lt.is_none_or(|b| x < b) && self.lte.is_none_or(|b| x <= b)
    }
}

/// One condition on one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The field equals the value (or, for an array, some element does).
    Match {
        /// The field.
        key: FieldPath,
        /// The value.
        value: MatchValue,
    },
    /// The field equals one of the values.
    MatchAny {
        /// The field.
        key: FieldPath,
        /// The values.
        any: Vec<MatchValue>,
    },
    /// The field is a number in the range.
    Range {
        /// The field.
        key: FieldPath,
        /// The range.
        range: Range,
    },
    /// The field is missing, `null` or an empty array (Qdrant `is_empty`).
    IsEmpty {
        /// The field.
        key: FieldPath,
    },
    /// A nested filter.
    Nested(Box<Filter>),
}

impl Condition {
    /// Evaluates the condition against a JSON object.
    pub fn matches(&self, obj: &Map<String, Value>) -> bool {
        let any_elem = |key: &FieldPath, f: &dyn Fn(&Value) -> bool| match key.lookup(obj) {
            None | Some(Value::Null) | Some(Value::Object(_)) => false,
            Some(Value::Array(items)) => items.iter().any(f),
            Some(v) => f(v),
        };
        match self {
            Self::Match { key, value } => any_elem(key, &|v| value.matches(v)),
            Self::MatchAny { key, any } => any_elem(key, &|v| any.iter().any(|m| m.matches(v))),
            Self::Range { key, range } => any_elem(key, &|v| v.as_f64().is_some_and(|x| range.contains(x))),
            Self::IsEmpty { key } => match key.lookup(obj) {
                None | Some(Value::Null) => true,
                Some(Value::Array(items)) => items.is_empty(),
                Some(_) => false,
            },
            Self::Nested(f) => f.matches(obj),
        }
    }
}

/// A boolean combination of conditions (Qdrant's `must` / `should` / `must_not`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Filter {
    /// All must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must: Vec<Condition>,
    /// At least one must match, when there are any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub should: Vec<Condition>,
    /// None may match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_not: Vec<Condition>,
}

impl Filter {
    /// Whether the filter has no conditions (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty()
    }

    /// Evaluates the filter against a JSON object. This is the reference semantics.
    pub fn matches(&self, obj: &Map<String, Value>) -> bool {
        self.must.iter().all(|c| c.matches(obj))
            && (self.should.is_empty() || self.should.iter().any(|c| c.matches(obj)))
            && !self.must_not.iter().any(|c| c.matches(obj))
    }

    /// The same filter with every field path moved under `prefix` (`lang` → `metadata.lang`), for filtering point
    /// payloads, which keep a document's metadata under `metadata`.
    ///
    /// # Errors
    /// A [`ValidationError`] when a prefixed path gets too long.
    pub fn under(&self, prefix: &str) -> Result<Filter, ValidationError> {
        let move_key = |k: &FieldPath| FieldPath::parse(&format!("{prefix}.{}", k.as_str()));
        let cond = |c: &Condition| -> Result<Condition, ValidationError> {
            Ok(match c {
                Condition::Match { key, value } => Condition::Match { key: move_key(key)?, value: value.clone() },
                Condition::MatchAny { key, any } => Condition::MatchAny { key: move_key(key)?, any: any.clone() },
                Condition::Range { key, range } => Condition::Range { key: move_key(key)?, range: *range },
                Condition::IsEmpty { key } => Condition::IsEmpty { key: move_key(key)? },
                Condition::Nested(f) => Condition::Nested(Box::new(f.under(prefix)?)),
            })
        };
        Ok(Filter {
            must: self.must.iter().map(cond).collect::<Result<_, _>>()?,
            should: self.should.iter().map(cond).collect::<Result<_, _>>()?,
            must_not: self.must_not.iter().map(cond).collect::<Result<_, _>>()?,
        })
    }

    /// Adds one `--where` expression, as users write it on the command line:
    ///
    /// | expression | meaning |
    /// |---|---|
    /// | `lang=en` | equals (`true`/`false`, integers and `"quoted"` strings are typed) |
    /// | `lang!=en` | does not equal (documents without the field match) |
    /// | `year>2000`, `year>=2000`, `year<2000`, `year<=2000` | numeric comparison |
    /// | `lang=en,fr` with `in`: `lang in en,fr` | equals one of |
    /// | `author exists` / `author missing` | present and non-empty / missing, null or `[]` |
    ///
    /// # Errors
    /// Returns a [`ValidationError`] describing the accepted forms.
    pub fn push_user_expr(&mut self, expr: &str) -> Result<(), ValidationError> {
        let e = expr.trim();
        let help = "use FIELD=VALUE, FIELD!=VALUE, FIELD>N, FIELD>=N, FIELD<N, FIELD<=N, 'FIELD in A,B' or 'FIELD exists'";
        let field =
            |s: &str| FieldPath::parse(s.trim()).map_err(|err| ValidationError::new("filter", expr, format!("{}; {help}", err.reason)));
        if let Some(f) = e.strip_suffix(" exists") {
            self.must_not.push(Condition::IsEmpty { key: field(f)? });
            return Ok(());
        }
        if let Some(f) = e.strip_suffix(" missing") {
            self.must.push(Condition::IsEmpty { key: field(f)? });
            return Ok(());
        }
        if let Some(f) = e.strip_suffix(" in") {
            return Err(ValidationError::new(
                "filter",
                expr,
                format!("the value list after `in` is missing; write it like '{} in en,fr'", f.trim()),
            ));
        }
        if let Some((f, vals)) = e.split_once(" in ") {
            if vals.split(',').any(|v| v.trim().is_empty()) {
                return Err(ValidationError::new(
                    "filter",
                    expr,
                    format!("the value list after `in` has an empty value; write it like '{} in en,fr'", f.trim()),
                ));
            }
            let any: Vec<_> = vals.split(',').map(|v| MatchValue::from_user(v.trim())).collect();
            self.must.push(Condition::MatchAny { key: field(f)?, any });
            return Ok(());
        }
        for (op, len) in [("!=", 2), (">=", 2), ("<=", 2), ("=", 1), (">", 1), ("<", 1)] {
            if let Some(pos) = e.find(op) {
                let (f, v) = (&e[..pos], e[pos + len..].trim());
                if let Some(rest) = v.strip_prefix('=') {
                    // `==`, `!==`, `>==`: the value would silently start with '='.
                    let fixed = format!("{}{op}{}", f.trim(), rest.trim());
                    return Err(ValidationError::new(
                        "filter",
                        expr,
                        format!("`{op}=` is not an operator; write {fixed:?} (one `=` compares for equality)"),
                    ));
                }
                let key = field(f)?;
                if op == "=" || op == "!=" {
                    let c = Condition::Match { key, value: MatchValue::from_user(v) };
                    if op == "=" {
                        self.must.push(c)
                    } else {
                        self.must_not.push(c)
                    }
                    return Ok(());
                }
                let n: f64 = v
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite())
                    .ok_or_else(|| ValidationError::new("filter", expr, format!("{v:?} is not a number; {op} compares numbers")))?;
                let mut range = Range::default();
                match op {
                    ">" => range.gt = Some(n),
                    ">=" => range.gte = Some(n),
                    "<" => range.lt = Some(n),
                    _ => range.lte = Some(n),
                }
                self.must.push(Condition::Range { key, range });
                return Ok(());
            }
        }
        Err(ValidationError::new("filter", expr, format!("no operator found; {help}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn doc() -> Map<String, Value> {
        json!({"lang": "en", "year": 2021, "draft": false, "tags": ["a", "b"], "score": 0.5, "empty": [], "nil": null, "author": {"name": "Ann"}})
            .as_object()
            .unwrap()
            .clone()
    }

    #[rstest]
    #[case("lang=en", true)]
    #[case("lang=fr", false)]
    #[case("lang!=fr", true)]
    #[case("missing!=x", true)]
    #[case("missing=x", false)]
    #[case("year=2021", true)]
    #[case("year=\"2021\"", false)]
    #[case("year>2020", true)]
    #[case("year>=2021", true)]
    #[case("year<2021", false)]
    #[case("year<=2021", true)]
    #[case("score<1", true)]
    #[case("lang>1", false)]
    #[case("draft=false", true)]
    #[case("draft=true", false)]
    #[case("tags=b", true)]
    #[case("tags=c", false)]
    #[case("lang in fr,en", true)]
    #[case("lang in fr,de", false)]
    #[case("author.name=Ann", true)]
    #[case("author=Ann", false)]
    #[case("author exists", true)]
    #[case("empty exists", false)]
    #[case("nil exists", false)]
    #[case("nope missing", true)]
    #[case("nil missing", true)]
    #[case("lang missing", false)]
    fn user_expressions(#[case] expr: &str, #[case] expected: bool) {
        let mut f = Filter::default();
        f.push_user_expr(expr).unwrap();
        assert_eq!(f.matches(&doc()), expected, "{expr} → {f:?}");
    }

    #[rstest]
    #[case("lang")]
    #[case("=en")]
    #[case("year>abc")]
    #[case("a b=c")]
    #[case("x>NaN")]
    #[case("lang==en")]
    #[case("lang!==en")]
    #[case("lang in")]
    #[case("lang in en,")]
    fn bad_expressions(#[case] expr: &str) {
        assert!(Filter::default().push_user_expr(expr).is_err());
    }

    #[test]
    fn errors_say_what_to_write() {
        let e = Filter::default().push_user_expr("lang==en").unwrap_err().to_string();
        assert!(e.contains("\"lang=en\""), "{e}");
        let e = Filter::default().push_user_expr("lang in").unwrap_err().to_string();
        assert!(e.contains("value list") && e.contains("lang in en,fr"), "{e}");
    }

    #[test]
    fn under_moves_every_path() {
        let mut f = Filter::default();
        f.push_user_expr("lang=en").unwrap();
        f.push_user_expr("year>2000").unwrap();
        f.push_user_expr("x exists").unwrap();
        let g = f.under("metadata").unwrap();
        let payload = json!({"metadata": doc()}).as_object().unwrap().clone();
        let mut f2 = f.clone();
        f2.must_not.clear();
        assert!(f2.matches(&doc()));
        let mut g2 = g.clone();
        g2.must_not.clear();
        assert!(g2.matches(&payload));
        assert!(!g2.matches(&doc()));
        assert_eq!(serde_json::to_string(&g).unwrap().matches("metadata.").count(), 3);
    }

    #[test]
    fn should_needs_one_when_present() {
        let key = FieldPath::parse("lang").unwrap();
        let f = Filter {
            should: vec![
                Condition::Match { key: key.clone(), value: MatchValue::Text("de".into()) },
                Condition::Match { key, value: MatchValue::Text("en".into()) },
            ],
            ..Filter::default()
        };
        assert!(f.matches(&doc()));
        assert!(!f.matches(&Map::new()));
        assert!(Filter::default().matches(&Map::new()));
    }
}
