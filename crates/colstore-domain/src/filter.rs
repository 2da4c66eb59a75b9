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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Map<String, Value> {
        json!({"lang": "en", "year": 2021, "draft": false, "tags": ["a", "b"], "score": 0.5, "empty": [], "nil": null, "author": {"name": "Ann"}})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn under_moves_every_path() {
        let now = crate::Timestamp::from_millis(0);
        let f = crate::DocFilter::parse("lang=en and year>2000 and not x missing", now).unwrap().as_metadata_filter().unwrap();
        let g = f.under("metadata").unwrap();
        let payload = json!({"metadata": doc()}).as_object().unwrap().clone();
        let mut f2 = f.clone();
        f2.must.pop();
        assert!(f2.matches(&doc()));
        let mut g2 = g.clone();
        g2.must.pop();
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
