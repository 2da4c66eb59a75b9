//! Our [`Filter`] as a Weaviate `where` (module `schema` says which properties exist and why).
//!
//! Every condition becomes a pair of `where`s that enclose its exact answer: `lo` selects no point the condition
//! rejects and `hi` every point it accepts. Where both are the same the translation is exact and Weaviate's answer is
//! final. Where they differ (a two-bounded range over a path that held arrays of several numbers, a text match on a
//! path where some value had surrounding whitespace, a path too long for a property name) the query runs with `hi`,
//! a superset, and the adapter keeps only the points [`Filter::matches`] accepts: a different answer is never
//! returned silently, and no filter is refused.

use colstore_domain::{Condition, Filter, MatchValue, Range};
use serde_json::{Value, json};

use crate::names::{Kind, property};
use crate::schema::{self, ClassInfo, padded};

/// A `where`, or a constant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Where {
    /// Every point.
    All,
    /// No point.
    Nothing,
    /// A Weaviate `where` filter (REST JSON form).
    Filter(Value),
}

impl Where {
    fn and(items: Vec<Where>) -> Where {
        let mut operands = Vec::new();
        for w in items {
            match w {
                Where::Nothing => return Where::Nothing,
                Where::All => {}
                Where::Filter(v) => operands.push(v),
            }
        }
        match operands.len() {
            0 => Where::All,
            1 => Where::Filter(operands.remove(0)),
            _ => Where::Filter(json!({"operator": "And", "operands": operands})),
        }
    }

    fn or(items: Vec<Where>) -> Where {
        let mut operands = Vec::new();
        for w in items {
            match w {
                Where::All => return Where::All,
                Where::Nothing => {}
                Where::Filter(v) => operands.push(v),
            }
        }
        match operands.len() {
            0 => Where::Nothing,
            1 => Where::Filter(operands.remove(0)),
            _ => Where::Filter(json!({"operator": "Or", "operands": operands})),
        }
    }

    fn not(self) -> Where {
        match self {
            Where::All => Where::Nothing,
            Where::Nothing => Where::All,
            Where::Filter(v) => match (v.get("operator").and_then(Value::as_str), v.get("operands").and_then(Value::as_array)) {
                (Some("Not"), Some(inner)) if inner.len() == 1 => Where::Filter(inner[0].clone()),
                _ => Where::Filter(json!({"operator": "Not", "operands": [v]})),
            },
        }
    }
}

/// A translated filter: `hi` is a superset of the exact answer, `exact` says it is the answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Translated {
    /// What to ask Weaviate.
    pub hi: Where,
    /// Whether Weaviate's answer to `hi` is final (else narrow it with `Filter::matches`).
    pub exact: bool,
}

#[derive(Debug, Clone)]
struct Approx {
    lo: Where,
    hi: Where,
    exact: bool,
}

impl Approx {
    fn exact(w: Where) -> Self {
        Self { lo: w.clone(), hi: w, exact: true }
    }

    fn between(lo: Where, hi: Where) -> Self {
        Self { lo, hi, exact: false }
    }

    fn and(items: Vec<Approx>) -> Self {
        let exact = items.iter().all(|a| a.exact);
        let (lo, hi): (Vec<_>, Vec<_>) = items.into_iter().map(|a| (a.lo, a.hi)).unzip();
        Self { lo: Where::and(lo), hi: Where::and(hi), exact }
    }

    fn or(items: Vec<Approx>) -> Self {
        let exact = items.iter().all(|a| a.exact);
        let (lo, hi): (Vec<_>, Vec<_>) = items.into_iter().map(|a| (a.lo, a.hi)).unzip();
        Self { lo: Where::or(lo), hi: Where::or(hi), exact }
    }

    fn not(self) -> Self {
        Self { lo: self.hi.not(), hi: self.lo.not(), exact: self.exact }
    }
}

/// Translates `filter` for a class with the properties in `class`.
pub(crate) fn translate(filter: &Filter, class: &ClassInfo) -> Translated {
    let a = filter_approx(filter, class);
    Translated { hi: a.hi, exact: a.exact }
}

fn filter_approx(f: &Filter, class: &ClassInfo) -> Approx {
    let mut parts: Vec<Approx> = f.must.iter().map(|c| condition(c, class)).collect();
    if !f.should.is_empty() {
        parts.push(Approx::or(f.should.iter().map(|c| condition(c, class)).collect()));
    }
    if !f.must_not.is_empty() {
        parts.push(Approx::or(f.must_not.iter().map(|c| condition(c, class)).collect()).not());
    }
    Approx::and(parts)
}

fn leaf(path: &str, operator: &str, value_key: &str, value: Value) -> Where {
    let mut w = json!({"path": [path], "operator": operator});
    w[value_key] = value;
    Where::Filter(w)
}

fn condition(c: &Condition, class: &ClassInfo) -> Approx {
    let (key, test) = match c {
        Condition::Nested(f) => return filter_approx(f, class),
        Condition::Match { key, value } => (key, Test::Match(std::slice::from_ref(value))),
        Condition::MatchAny { key, any } => (key, Test::Match(any)),
        Condition::Range { key, range } => (key, Test::Range(range)),
        Condition::IsEmpty { key } => (key, Test::IsEmpty),
    };
    let path = key.as_str();
    match path {
        "key" => text_field(schema::KEY, &test, class.has(schema::KEY_PADDED)),
        "collection" => text_field(schema::COLLECTION, &test, false),
        "content_hash" => text_field(schema::CONTENT_HASH, &test, false),
        "chunk_hash" => text_field(schema::CHUNK_HASH, &test, false),
        "chunk" => chunk_field(&test),
        // Always an object: never empty, never equal to or in the range of a value.
        "metadata" => Approx::exact(Where::Nothing),
        _ => match path.strip_prefix("metadata.") {
            Some(meta) => metadata_field(meta, &test, class),
            // Any other path is missing from every payload (or looks inside a string or number).
            None => Approx::exact(if matches!(test, Test::IsEmpty) { Where::All } else { Where::Nothing }),
        },
    }
}

enum Test<'a> {
    Match(&'a [MatchValue]),
    Range(&'a Range),
    IsEmpty,
}

/// A fixed text property of every object (never empty).
fn text_field(prop: &str, test: &Test<'_>, any_padded: bool) -> Approx {
    match test {
        Test::IsEmpty | Test::Range(_) => Approx::exact(Where::Nothing),
        Test::Match(values) => Approx::or(
            values
                .iter()
                .map(|v| match v {
                    MatchValue::Text(s) if padded(s) || any_padded => {
                        let trimmed = s.trim();
                        let hi = if trimmed.is_empty() { Where::All } else { leaf(prop, "Equal", "valueText", json!(trimmed)) };
                        Approx::between(Where::Nothing, hi)
                    }
                    MatchValue::Text(s) => Approx::exact(leaf(prop, "Equal", "valueText", json!(s))),
                    _ => Approx::exact(Where::Nothing),
                })
                .collect(),
        ),
    }
}

fn chunk_field(test: &Test<'_>) -> Approx {
    match test {
        Test::IsEmpty => Approx::exact(Where::Nothing),
        Test::Match(values) => Approx::or(
            values
                .iter()
                .map(|v| match v {
                    MatchValue::Integer(i) => Approx::exact(leaf(schema::CHUNK, "Equal", "valueInt", json!(i))),
                    _ => Approx::exact(Where::Nothing),
                })
                .collect(),
        ),
        Test::Range(r) => Approx::exact(int_range(schema::CHUNK, r)),
    }
}

/// A range over an integer property: bounds rounded to the integers they admit.
fn int_range(prop: &str, r: &Range) -> Where {
    let mut parts = Vec::new();
    let mut bound = |op: &str, x: f64| {
        // Beyond ±2^63 every i64 lies on one side: a constant.
        const LIMIT: f64 = 9.2e18;
        let below_all = x < -LIMIT;
        let above_all = x > LIMIT;
        let w = match op {
            "GreaterThanEqual" if below_all => Where::All,
            "GreaterThanEqual" if above_all => Where::Nothing,
            "LessThanEqual" if below_all => Where::Nothing,
            "LessThanEqual" if above_all => Where::All,
            _ => leaf(prop, op, "valueInt", json!(x as i64)),
        };
        parts.push(w);
    };
    // n > x ⇔ n ≥ ⌊x⌋+1; n ≥ x ⇔ n ≥ ⌈x⌉; n < x ⇔ n ≤ ⌈x⌉-1; n ≤ x ⇔ n ≤ ⌊x⌋.
    if let Some(x) = r.gt {
        bound("GreaterThanEqual", x.floor() + 1.0);
    }
    if let Some(x) = r.gte {
        bound("GreaterThanEqual", x.ceil());
    }
    if let Some(x) = r.lt {
        bound("LessThanEqual", x.ceil() - 1.0);
    }
    if let Some(x) = r.lte {
        bound("LessThanEqual", x.floor());
    }
    Where::and(parts)
}

fn number_bounds(prop: &str, r: &Range) -> Vec<Where> {
    let mut parts = Vec::new();
    for (op, x) in [("GreaterThan", r.gt), ("GreaterThanEqual", r.gte), ("LessThan", r.lt), ("LessThanEqual", r.lte)] {
        if let Some(x) = x {
            parts.push(leaf(prop, op, "valueNumber", json!(x)));
        }
    }
    if parts.is_empty() {
        // An open range accepts any number.
        parts.push(leaf(prop, "GreaterThanEqual", "valueNumber", json!(-f64::MAX)));
    }
    parts
}

fn metadata_field(path: &str, test: &Test<'_>, class: &ClassInfo) -> Approx {
    // The property of `kind`, when some object has values of it: None = no object has such a value.
    let prop = |kind: Kind| -> Result<Option<String>, ()> {
        match property(kind, path) {
            None => Err(()),
            Some(name) => Ok(class.has(&name).then_some(name)),
        }
    };
    let unknown = || Approx::between(Where::Nothing, Where::All);
    match test {
        Test::IsEmpty => Approx::exact(leaf(schema::PRESENT, "Equal", "valueText", json!(path)).not()),
        Test::Match(values) => Approx::or(
            values
                .iter()
                .map(|v| {
                    let (kind, key, value) = match v {
                        MatchValue::Text(s) => (Kind::Text, "valueText", json!(s)),
                        MatchValue::Integer(i) => (Kind::Int, "valueInt", json!(i)),
                        MatchValue::Bool(b) => (Kind::Bool, "valueBoolean", json!(b)),
                    };
                    let Ok(name) = prop(kind) else { return unknown() };
                    let w = name.map_or(Where::Nothing, |n| leaf(&n, "Equal", key, value));
                    match v {
                        MatchValue::Text(s) => {
                            let Ok(padded_marker) = prop(Kind::Padded) else { return unknown() };
                            if padded(s) || padded_marker.is_some() {
                                // Weaviate trims (and drops empty) strings: ask for the trimmed value, or for any
                                // present value, and confirm on our side.
                                let trimmed = s.trim();
                                let hi = if trimmed.is_empty() {
                                    leaf(schema::PRESENT, "Equal", "valueText", json!(path))
                                } else {
                                    match prop(Kind::Text) {
                                        Ok(Some(n)) => leaf(&n, "Equal", "valueText", json!(trimmed)),
                                        _ => Where::Nothing,
                                    }
                                };
                                return Approx::between(Where::Nothing, hi);
                            }
                            Approx::exact(w)
                        }
                        _ => Approx::exact(w),
                    }
                })
                .collect(),
        ),
        Test::Range(r) => {
            let (Ok(single), Ok(several)) = (prop(Kind::Number), prop(Kind::Numbers)) else { return unknown() };
            let mut parts = Vec::new();
            if let Some(n) = single {
                parts.push(Approx::exact(Where::and(number_bounds(&n, r))));
            }
            if let Some(n) = several {
                let bounds = number_bounds(&n, r);
                if bounds.len() == 1 {
                    parts.push(Approx::exact(Where::and(bounds)));
                } else {
                    // Weaviate checks each bound against any element, not all bounds against one.
                    parts.push(Approx::between(Where::Nothing, Where::and(bounds)));
                }
            }
            Approx::or(parts)
        }
    }
}

/// A `where` in GraphQL's input syntax: keys bare, `operator` an enum, strings and numbers as in JSON.
pub(crate) fn graphql_literal(v: &Value) -> String {
    let mut out = String::new();
    write_literal(v, None, &mut out);
    out
}

fn write_literal(v: &Value, key: Option<&str>, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                write_literal(v, Some(k), out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_literal(v, key, out);
            }
            out.push(']');
        }
        Value::String(s) if key == Some("operator") => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    fn class(props: &[&str]) -> ClassInfo {
        ClassInfo { marker: None, properties: props.iter().map(|p| (*p).to_owned()).collect::<BTreeSet<_>>() }
    }

    fn t(f: Value, props: &[&str]) -> Translated {
        translate(&serde_json::from_value(f).expect("a filter"), &class(props))
    }

    #[test]
    fn integer_ranges_round_to_the_integers_they_admit() {
        let w = t(json!({"must": [{"range": {"key": "chunk", "range": {"gt": 1.5, "lt": 4.0}}}]}), &[]);
        assert!(w.exact);
        assert_eq!(
            w.hi,
            Where::Filter(json!({"operator": "And", "operands": [
                {"path": ["chunk"], "operator": "GreaterThanEqual", "valueInt": 2},
                {"path": ["chunk"], "operator": "LessThanEqual", "valueInt": 3}
            ]}))
        );
        let w = t(json!({"must": [{"range": {"key": "chunk", "range": {"gte": -1e300}}}]}), &[]);
        assert_eq!(w.hi, Where::All, "a bound below every integer");
        let w = t(json!({"must": [{"range": {"key": "chunk", "range": {"gt": 1e300}}}]}), &[]);
        assert_eq!(w.hi, Where::Nothing, "a bound above every integer");
    }

    #[test]
    fn constants_fold_and_unknown_paths_follow_the_reference() {
        // No object ever had a text `lang`: nothing matches, and `must_not` of it matches everything.
        assert_eq!(t(json!({"must": [{"match": {"key": "metadata.lang", "value": "en"}}]}), &[]).hi, Where::Nothing);
        assert_eq!(t(json!({"must_not": [{"match": {"key": "metadata.lang", "value": "en"}}]}), &[]).hi, Where::All);
        assert_eq!(t(json!({"must": [{"is_empty": {"key": "nope"}}]}), &[]).hi, Where::All, "a missing top-level key is empty");
        assert_eq!(t(json!({"must": [{"match": {"key": "key", "value": 3}}]}), &[]).hi, Where::Nothing, "a key is never a number");
        assert_eq!(t(json!({"must": [{"match_any": {"key": "chunk", "any": []}}]}), &[]).hi, Where::Nothing);
        assert_eq!(
            t(json!({"must_not": [{"is_empty": {"key": "metadata.a"}}]}), &[]).hi,
            Where::Filter(json!({"path": ["metaPresent"], "operator": "Equal", "valueText": "a"})),
            "a double negation disappears"
        );
    }

    #[test]
    fn what_weaviate_cannot_answer_exactly_is_marked() {
        let two_bounds = json!({"must": [{"range": {"key": "metadata.n", "range": {"gte": 1.0, "lte": 2.0}}}]});
        assert!(t(two_bounds.clone(), &["mn_n"]).exact, "scalars: exact");
        assert!(!t(two_bounds.clone(), &["mn_n", "ma_n"]).exact, "arrays of several numbers: confirmed on our side");
        let one_bound = json!({"must": [{"range": {"key": "metadata.n", "range": {"gte": 1.0}}}]});
        assert!(t(one_bound, &["mn_n", "ma_n"]).exact, "one bound is exact on arrays too");
        let text = json!({"must": [{"match": {"key": "metadata.s", "value": "x"}}]});
        assert!(t(text.clone(), &["mt_s"]).exact);
        assert!(!t(text, &["mt_s", "mw_s"]).exact, "some value had surrounding whitespace");
        assert!(!t(json!({"must": [{"match": {"key": "metadata.s", "value": " x"}}]}), &["mt_s"]).exact);
        assert!(!t(json!({"must": [{"match": {"key": "key", "value": "a"}}]}), &["keyPadded"]).exact);
        let long = format!("metadata.{}", "a".repeat(240));
        assert!(!t(json!({"must": [{"match": {"key": long, "value": "x"}}]}), &[]).exact, "no property name fits");
    }

    #[test]
    fn graphql_literals_have_bare_keys_and_enum_operators() {
        let w = json!({"operator": "And", "operands": [{"path": ["key"], "operator": "Equal", "valueText": "a \"b\"\n"}]});
        assert_eq!(graphql_literal(&w), r#"{operands: [{operator: Equal, path: ["key"], valueText: "a \"b\"\n"}], operator: And}"#);
    }
}
