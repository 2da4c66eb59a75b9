//! Qdrant's filters as the real server parses and evaluates them (not as colstore's `Filter::matches` does: the
//! fake must show where the two differ).
//!
//! - Unknown keys are refused (`unknown field ..., expected one of ...`), as serde does in Qdrant.
//! - `must`: all; `should`: at least one, and an empty `should` list matches nothing; `must_not`: none;
//!   `min_should`: at least `min_count` of its conditions.
//! - A key path is `a.b.c`; `a[]` walks the elements of an array, and an array at the end of the path is matched
//!   element by element. Intermediate arrays are not walked without `[]`.
//! - `match.value` is type-strict (integer, string, bool); `match.any` takes only all strings or all integers;
//!   `range` compares numbers; `is_empty` holds when the path is missing or all its values are null (so `[]`,
//!   `null` and `[null]`); `is_null` when the value is `null`; `has_id` by id. A missing key never matches.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::api::Pid;

/// A Qdrant filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QFilter {
    #[serde(default)]
    should: Option<Vec<QCond>>,
    #[serde(default)]
    min_should: Option<MinShould>,
    #[serde(default)]
    must: Option<Vec<QCond>>,
    #[serde(default)]
    must_not: Option<Vec<QCond>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MinShould {
    conditions: Vec<QCond>,
    min_count: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum QCond {
    HasId(HasId),
    IsEmpty(IsEmpty),
    IsNull(IsNull),
    Field(FieldCond),
    Filter(QFilter),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HasId {
    has_id: Vec<Pid>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyOnly {
    key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IsEmpty {
    is_empty: KeyOnly,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IsNull {
    is_null: KeyOnly,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldCond {
    key: String,
    #[serde(default, rename = "match")]
    matching: Option<QMatch>,
    #[serde(default)]
    range: Option<QRange>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum ValueVariants {
    Str(String),
    Int(i64),
    Bool(bool),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum AnyVariants {
    Strs(Vec<String>),
    Ints(Vec<i64>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum QMatch {
    Value { value: ValueVariants },
    Any { any: AnyVariants },
    Except { except: AnyVariants },
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct QRange {
    #[serde(default)]
    gt: Option<f64>,
    #[serde(default)]
    gte: Option<f64>,
    #[serde(default)]
    lt: Option<f64>,
    #[serde(default)]
    lte: Option<f64>,
}

/// The values at `key` in `payload`: an array at the end of the path gives its elements.
fn values<'a>(payload: &'a Map<String, Value>, key: &str) -> Vec<&'a Value> {
    let mut current: Vec<&'a Value> = Vec::new();
    let mut first = true;
    for seg in key.split('.') {
        let (name, walk) = match seg.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (seg, false),
        };
        let mut next = Vec::new();
        if first {
            if let Some(v) = payload.get(name) {
                next.push(v);
            }
            first = false;
        } else {
            for v in &current {
                if let Some(o) = v.as_object()
                    && let Some(x) = o.get(name)
                {
                    next.push(x);
                }
            }
        }
        if walk {
            next = next.into_iter().flat_map(|v| v.as_array().map(|a| a.iter().collect::<Vec<_>>()).unwrap_or_default()).collect();
        }
        current = next;
    }
    current.into_iter().flat_map(|v| if let Value::Array(a) = v { a.iter().collect() } else { vec![v] }).collect()
}

fn value_matches(m: &ValueVariants, v: &Value) -> bool {
    match (m, v) {
        (ValueVariants::Str(a), Value::String(b)) => a == b,
        (ValueVariants::Int(a), Value::Number(n)) => n.as_i64() == Some(*a),
        (ValueVariants::Bool(a), Value::Bool(b)) => a == b,
        _ => false,
    }
}

fn any_matches(any: &AnyVariants, v: &Value) -> bool {
    match any {
        AnyVariants::Strs(s) => v.as_str().is_some_and(|x| s.iter().any(|a| a == x)),
        AnyVariants::Ints(i) => v.as_i64().is_some_and(|x| i.contains(&x)),
    }
}

impl QRange {
    fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b) && self.gte.is_none_or(|b| x >= b) && self.lt.is_none_or(|b| x < b) && self.lte.is_none_or(|b| x <= b)
    }
}

impl QCond {
    fn check(&self, id: &Pid, payload: &Map<String, Value>) -> bool {
        match self {
            QCond::HasId(h) => h.has_id.contains(id),
            QCond::IsEmpty(c) => values(payload, &c.is_empty.key).iter().all(|v| v.is_null()),
            QCond::IsNull(c) => {
                let mut segs: Vec<&str> = c.is_null.key.split('.').collect();
                let last = segs.pop().unwrap_or_default();
                let mut cur = Some(payload);
                for s in segs {
                    cur = cur.and_then(|o| o.get(s)).and_then(Value::as_object);
                }
                cur.and_then(|o| o.get(last)).is_some_and(Value::is_null)
            }
            QCond::Field(f) => {
                let vals = values(payload, &f.key);
                let matched = match &f.matching {
                    None => true,
                    Some(QMatch::Value { value }) => vals.iter().any(|v| value_matches(value, v)),
                    Some(QMatch::Any { any }) => vals.iter().any(|v| any_matches(any, v)),
                    Some(QMatch::Except { except }) => !vals.is_empty() && vals.iter().any(|v| !any_matches(except, v)),
                };
                let ranged = match &f.range {
                    None => true,
                    Some(r) => vals.iter().any(|v| v.as_f64().is_some_and(|x| r.contains(x))),
                };
                (f.matching.is_some() || f.range.is_some()) && matched && ranged
            }
            QCond::Filter(inner) => inner.check(id, payload),
        }
    }
}

impl QFilter {
    /// Whether point `id` with `payload` passes.
    pub(crate) fn check(&self, id: &Pid, payload: &Map<String, Value>) -> bool {
        let must = self.must.as_ref().is_none_or(|c| c.iter().all(|c| c.check(id, payload)));
        let should = self.should.as_ref().is_none_or(|c| c.iter().any(|c| c.check(id, payload)));
        let min_should =
            self.min_should.as_ref().is_none_or(|m| m.conditions.iter().filter(|c| c.check(id, payload)).count() >= m.min_count);
        let must_not = self.must_not.as_ref().is_none_or(|c| !c.iter().any(|c| c.check(id, payload)));
        must && should && min_should && must_not
    }
}
