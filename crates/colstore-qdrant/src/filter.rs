//! [`Filter`] → Qdrant's filter JSON, so that Qdrant selects exactly what [`Filter::matches`] selects.
//!
//! Where the two differ in what they can express, the translation bridges the gap:
//! - `match_any` with values of several types (Qdrant accepts only all-strings or all-integers, and no booleans)
//!   becomes a `should` of one `match.any` per type and one `match.value` per boolean;
//! - an empty `match_any` (matches nothing) and empty nested filters (match everything) are folded away, because
//!   Qdrant treats an empty `should` list as "nothing matches", unlike [`Filter::matches`]; no empty list is sent;
//! - the domain's nested filter becomes a Qdrant filter used as a condition (Qdrant's own `nested` condition means
//!   something else: conditions on the objects of an array);
//! - a range bound that is not finite cannot be sent in JSON and is refused with `UnsupportedFilter`.
//!
//! A filter that can match nothing at all is sent as `is_empty` on `collection`, which every colstore payload holds.
//!
//! Differences that depend on the stored data, not on the filter, cannot be translated away and remain (the testkit's
//! Qdrant fake models Qdrant this way; neither is checked against a real server yet):
//! - `is_empty` on an array holding only nulls (`[null]`): Qdrant counts it empty, [`Filter::matches`] does not;
//! - a path through an array of objects (`metadata.authors.name` over `authors: [{name}]`): neither side walks the
//!   array, but if a Qdrant version does so implicitly, results would differ for such payloads.

use colstore_domain::ports::IndexError;
use colstore_domain::{Condition, Filter, MatchValue, Range};
use serde_json::{Map, Value, json};

/// A translated filter or condition: constant, or Qdrant JSON.
#[derive(Debug, Clone, PartialEq)]
enum Q {
    /// Matches every point.
    True,
    /// Matches no point.
    False,
    /// A Qdrant condition (field condition or filter object).
    Json(Value),
}

/// The Qdrant filter for `filter`, or `None` when it matches every point (then no filter is sent).
///
/// # Errors
/// `UnsupportedFilter` when a range bound is not a finite number.
pub(crate) fn to_qdrant(filter: &Filter) -> Result<Option<Value>, IndexError> {
    Ok(match translate(filter)? {
        Q::True => None,
        Q::False => Some(never()),
        Q::Json(v) => Some(v),
    })
}

/// A filter no colstore point matches: every payload has a non-empty `collection`.
fn never() -> Value {
    json!({"must": [{"is_empty": {"key": "collection"}}]})
}

fn translate(filter: &Filter) -> Result<Q, IndexError> {
    let mut out = Map::new();
    let mut must = Vec::new();
    for c in &filter.must {
        match condition(c)? {
            Q::True => {}
            Q::False => return Ok(Q::False),
            Q::Json(v) => must.push(v),
        }
    }
    if !filter.should.is_empty() {
        let mut should = Vec::new();
        let mut satisfied = false;
        for c in &filter.should {
            match condition(c)? {
                Q::True => satisfied = true,
                Q::False => {}
                Q::Json(v) => should.push(v),
            }
        }
        if !satisfied {
            if should.is_empty() {
                return Ok(Q::False);
            }
            out.insert("should".into(), Value::Array(should));
        }
    }
    let mut must_not = Vec::new();
    for c in &filter.must_not {
        match condition(c)? {
            Q::True => return Ok(Q::False),
            Q::False => {}
            Q::Json(v) => must_not.push(v),
        }
    }
    if !must.is_empty() {
        out.insert("must".into(), Value::Array(must));
    }
    if !must_not.is_empty() {
        out.insert("must_not".into(), Value::Array(must_not));
    }
    Ok(if out.is_empty() { Q::True } else { Q::Json(Value::Object(out)) })
}

fn value(v: &MatchValue) -> Value {
    match v {
        MatchValue::Bool(b) => json!(b),
        MatchValue::Integer(i) => json!(i),
        MatchValue::Text(s) => json!(s),
    }
}

fn condition(c: &Condition) -> Result<Q, IndexError> {
    Ok(match c {
        Condition::Match { key, value: v } => Q::Json(json!({"key": key.as_str(), "match": {"value": value(v)}})),
        Condition::MatchAny { key, any } => {
            let texts: Vec<&str> = any.iter().filter_map(|v| if let MatchValue::Text(s) = v { Some(s.as_str()) } else { None }).collect();
            let ints: Vec<i64> = any.iter().filter_map(|v| if let MatchValue::Integer(i) = v { Some(*i) } else { None }).collect();
            let mut bools: Vec<bool> = any.iter().filter_map(|v| if let MatchValue::Bool(b) = v { Some(*b) } else { None }).collect();
            bools.sort_unstable();
            bools.dedup();
            let mut parts = Vec::new();
            if !texts.is_empty() {
                parts.push(json!({"key": key.as_str(), "match": {"any": texts}}));
            }
            if !ints.is_empty() {
                parts.push(json!({"key": key.as_str(), "match": {"any": ints}}));
            }
            for b in bools {
                parts.push(json!({"key": key.as_str(), "match": {"value": b}}));
            }
            match parts.len() {
                0 => Q::False,
                1 => Q::Json(parts.remove(0)),
                _ => Q::Json(json!({"should": parts})),
            }
        }
        Condition::Range { key, range } => Q::Json(json!({"key": key.as_str(), "range": bounds(key.as_str(), range)?})),
        Condition::IsEmpty { key } => Q::Json(json!({"is_empty": {"key": key.as_str()}})),
        Condition::Nested(inner) => translate(inner)?,
    })
}

fn bounds(key: &str, r: &Range) -> Result<Value, IndexError> {
    let mut m = Map::new();
    for (name, b) in [("gt", r.gt), ("gte", r.gte), ("lt", r.lt), ("lte", r.lte)] {
        if let Some(x) = b {
            if !x.is_finite() {
                return Err(IndexError::UnsupportedFilter(format!(
                    "the range on {key:?} has the bound {name} = {x}, which Qdrant cannot take (JSON has no infinities or NaN); \
                     use a finite bound or leave it out"
                )));
            }
            m.insert(name.into(), json!(x));
        }
    }
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: Value) -> Filter {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn empty_filters_send_nothing() {
        assert_eq!(to_qdrant(&Filter::default()).unwrap(), None);
        assert_eq!(to_qdrant(&f(json!({"must": [{"nested": {}}]}))).unwrap(), None);
        assert_eq!(to_qdrant(&f(json!({"should": [{"nested": {}}, {"is_empty": {"key": "a"}}]}))).unwrap(), None);
    }

    #[test]
    fn impossible_filters_match_nothing() {
        assert_eq!(to_qdrant(&f(json!({"must": [{"match_any": {"key": "a", "any": []}}]}))).unwrap(), Some(never()));
        assert_eq!(to_qdrant(&f(json!({"must_not": [{"nested": {}}]}))).unwrap(), Some(never()));
        assert_eq!(to_qdrant(&f(json!({"should": [{"match_any": {"key": "a", "any": []}}]}))).unwrap(), Some(never()));
        // A must_not of something impossible is no constraint at all.
        assert_eq!(to_qdrant(&f(json!({"must_not": [{"match_any": {"key": "a", "any": []}}]}))).unwrap(), None);
    }

    #[test]
    fn mixed_match_any_is_split_by_type() {
        let got = to_qdrant(&f(json!({"must": [{"match_any": {"key": "k", "any": ["x", 3, true, "y", true]}}]}))).unwrap();
        let want = json!({"must": [{"should": [
            {"key": "k", "match": {"any": ["x", "y"]}},
            {"key": "k", "match": {"any": [3]}},
            {"key": "k", "match": {"value": true}}
        ]}]});
        assert_eq!(got, Some(want));
    }

    #[test]
    fn infinite_bounds_are_refused() {
        let r = Filter {
            must: vec![Condition::Range {
                key: colstore_domain::FieldPath::parse("n").unwrap(),
                range: Range { gt: Some(f64::INFINITY), ..Range::default() },
            }],
            ..Filter::default()
        };
        assert!(matches!(to_qdrant(&r), Err(IndexError::UnsupportedFilter(m)) if m.contains("\"n\"")));
    }
}
