//! Translating a [`ListQuery`] into SQL over the `documents` table (alias `d`).
//!
//! The translation follows [`Filter::matches`] exactly (the conformance suite compares the two):
//! `json_each` over a path yields the scalar itself or each element of an array, so "any element matches" comes for
//! free; conditions compare JSON types explicitly so that `1`, `"1"` and `true` never match each other.

use colstore_domain::{Condition, FieldPath, Filter, ListQuery, MatchValue, SortField, SortOrder};

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Real(f64),
    Text(String),
}

/// The `WHERE` clause (without the keyword) and its arguments, in placeholder order.
pub(crate) struct Where {
    pub sql: String,
    pub args: Vec<Arg>,
}

pub(crate) fn json_path(key: &FieldPath) -> String {
    let mut p = String::from("$");
    for seg in key.segments() {
        // Segments are [A-Za-z0-9_-] (FieldPath validates), so quoting cannot be broken out of.
        p.push_str(".\"");
        p.push_str(seg);
        p.push('"');
    }
    p
}

fn match_sql(value: &MatchValue, args: &mut Vec<Arg>) -> String {
    match value {
        MatchValue::Bool(true) => "je.type = 'true'".into(),
        MatchValue::Bool(false) => "je.type = 'false'".into(),
        MatchValue::Integer(i) => {
            args.push(Arg::Int(*i));
            "(je.type = 'integer' AND je.value = ?)".into()
        }
        MatchValue::Text(s) => {
            args.push(Arg::Text(s.clone()));
            "(je.type = 'text' AND je.value = ?)".into()
        }
    }
}

fn any_element(key: &FieldPath, predicate: impl FnOnce(&mut Vec<Arg>) -> String, args: &mut Vec<Arg>) -> String {
    let path = json_path(key);
    args.push(Arg::Text(path.clone()));
    let pred = predicate(args);
    args.push(Arg::Text(path));
    format!("(EXISTS (SELECT 1 FROM json_each(d.meta, ?) je WHERE {pred}) AND coalesce(json_type(d.meta, ?) <> 'object', 0))")
}

fn condition_sql(c: &Condition, args: &mut Vec<Arg>) -> String {
    match c {
        Condition::Match { key, value } => any_element(key, |a| match_sql(value, a), args),
        Condition::MatchAny { key, any } => {
            if any.is_empty() {
                return "0".into();
            }
            any_element(key, |a| format!("({})", any.iter().map(|v| match_sql(v, a)).collect::<Vec<_>>().join(" OR ")), args)
        }
        Condition::Range { key, range } => any_element(
            key,
            |a| {
                let mut parts = vec!["je.type IN ('integer', 'real')".to_owned()];
                for (op, bound) in [(">", range.gt), (">=", range.gte), ("<", range.lt), ("<=", range.lte)] {
                    if let Some(b) = bound {
                        a.push(Arg::Real(b));
                        parts.push(format!("je.value {op} ?"));
                    }
                }
                parts.join(" AND ")
            },
            args,
        ),
        Condition::IsEmpty { key } => {
            let path = json_path(key);
            for _ in 0..3 {
                args.push(Arg::Text(path.clone()));
            }
            "(coalesce(json_type(d.meta, ?), 'null') = 'null' OR (json_type(d.meta, ?) = 'array' AND json_array_length(d.meta, ?) = 0))"
                .into()
        }
        Condition::Nested(f) => filter_sql(f, args),
    }
}

/// SQL for a filter; always evaluates to 0 or 1, never NULL.
pub(crate) fn filter_sql(f: &Filter, args: &mut Vec<Arg>) -> String {
    let mut parts = Vec::new();
    for c in &f.must {
        parts.push(condition_sql(c, args));
    }
    if !f.should.is_empty() {
        let any: Vec<_> = f.should.iter().map(|c| condition_sql(c, args)).collect();
        parts.push(format!("({})", any.join(" OR ")));
    }
    for c in &f.must_not {
        parts.push(format!("NOT {}", condition_sql(c, args)));
    }
    if parts.is_empty() { "1".into() } else { format!("coalesce(({}), 0)", parts.join(" AND ")) }
}

/// The full `WHERE` for a listing in collection `collection_id`.
pub(crate) fn where_clause(collection_id: i64, q: &ListQuery) -> Where {
    let mut args = vec![Arg::Int(collection_id)];
    let mut sql = String::from("d.collection_id = ?");
    for tag in &q.tags {
        sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(d.tags) jt WHERE jt.value = ?)");
        args.push(Arg::Text(tag.as_str().to_owned()));
    }
    for (col, range) in [("d.created_at", q.created), ("d.updated_at", q.updated)] {
        if let Some(s) = range.since {
            sql.push_str(&format!(" AND {col} >= ?"));
            args.push(Arg::Int(s.as_millis()));
        }
        if let Some(u) = range.until {
            sql.push_str(&format!(" AND {col} < ?"));
            args.push(Arg::Int(u.as_millis()));
        }
    }
    if let Some(p) = &q.key_prefix {
        sql.push_str(" AND substr(d.key, 1, length(?)) = ?");
        args.push(Arg::Text(p.clone()));
        args.push(Arg::Text(p.clone()));
    }
    if !q.filter.is_empty() {
        sql.push_str(" AND ");
        sql.push_str(&filter_sql(&q.filter, &mut args));
    }
    Where { sql, args }
}

/// `ORDER BY` for a listing; ties are broken by key.
pub(crate) fn order_by(q: &ListQuery) -> String {
    let col = match q.sort {
        SortField::Key => "d.key",
        SortField::UpdatedAt => "d.updated_at",
        SortField::CreatedAt => "d.created_at",
        SortField::Size => "d.size",
    };
    let dir = match q.order {
        SortOrder::Asc => "ASC",
        SortOrder::Desc => "DESC",
    };
    if q.sort == SortField::Key { format!("{col} {dir}") } else { format!("{col} {dir}, d.key ASC") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_per_segment() {
        assert_eq!(json_path(&FieldPath::parse("author.name").unwrap()), "$.\"author\".\"name\"");
    }

    #[test]
    fn placeholders_match_arguments() {
        let mut q = ListQuery::default();
        for e in ["lang=en", "year>=2000", "x!=1", "t in a,b", "z exists", "w missing"] {
            q.filter.push_user_expr(e).unwrap();
        }
        let w = where_clause(1, &q);
        assert_eq!(w.sql.matches('?').count(), w.args.len(), "{}", w.sql);
    }
}
