//! Translating a [`ListQuery`] into SQL over the `documents` table (alias `d`).
//!
//! The translation follows [`Filter::matches`] exactly (the conformance suite compares the two):
//! `json_each` over a path yields the scalar itself or each element of an array, so "any element matches" comes for
//! free; conditions compare JSON types explicitly so that `1`, `"1"` and `true` never match each other.

use colstore_domain::ports::SyncState;
use colstore_domain::{Condition, Cursor, DocFilter, FieldPath, Filter, ListQuery, MatchValue, SortField, SortOrder, TimeRange};

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Real(f64),
    Text(String),
}

/// What the translation may look up in `doc_terms` (migration 0009) instead of evaluating on each document: the
/// collection's id and the JSON paths of its indexed fields. Tags are always in `doc_terms`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Terms<'a> {
    pub cid: i64,
    pub indexed: &'a [String],
    /// The one lookup the query starts from: a part of the expression's top-level `and` ([`lookups`]), written as
    /// `d.id IN (…)`. Every other condition on a tag or an indexed field is a probe of `doc_terms_doc` for the
    /// document at hand, so no second list of ids is built.
    pub drive: Option<&'a DocFilter>,
}

/// How a condition answered from `doc_terms` starts: the document ids it lists.
const LOOKUP: &str = "d.id IN (";

/// The parts of `e`'s top-level `and` that are `doc_terms` lookups (tags, conditions on indexed fields): every match
/// is among the ids each lists, so the query can start from one of them instead of walking the collection.
pub(crate) fn lookups<'e>(e: &'e DocFilter, t: &Terms<'_>) -> Vec<&'e DocFilter> {
    match e {
        DocFilter::All(parts) => parts.iter().flat_map(|p| lookups(p, t)).collect(),
        DocFilter::Tag(_) => vec![e],
        DocFilter::Meta(Condition::Match { key, .. } | Condition::MatchAny { key, .. } | Condition::Range { key, .. })
            if t.indexed.contains(&json_path(key)) =>
        {
            vec![e]
        }
        _ => Vec::new(),
    }
}

/// The `SELECT` of the ids a lookup of [`lookups`] lists (to count them before choosing which one drives).
pub(crate) fn lookup_select(lookup: &DocFilter, t: Terms<'_>, args: &mut Vec<Arg>) -> String {
    let sql = doc_filter_sql(lookup, args, Some(Terms { drive: Some(lookup), ..t }));
    debug_assert!(sql.starts_with(LOOKUP) && sql.ends_with(')'), "{sql}");
    sql.strip_prefix(LOOKUP).and_then(|s| s.strip_suffix(')')).unwrap_or(&sql).to_owned()
}

/// Whether `e` is the lookup the query starts from.
fn drives(e: &DocFilter, t: Option<Terms<'_>>) -> bool {
    t.and_then(|t| t.drive).is_some_and(|d| std::ptr::eq(d, e))
}

/// The JSON paths of the collection's indexed fields.
pub(crate) async fn indexed_paths(conn: &mut sqlx::SqliteConnection, cid: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT path FROM indexed_fields WHERE collection_id = ? ORDER BY path").bind(cid).fetch_all(conn).await
}

/// The `WHERE` clause (without the keyword) and its arguments, in placeholder order.
pub(crate) struct Where {
    pub sql: String,
    pub args: Vec<Arg>,
    /// Whether the query starts from a `doc_terms` lookup's ids (it then reads every match anyway, so a page and
    /// its total are best had in one pass).
    pub driven: bool,
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

fn any_element(
    key: &FieldPath,
    predicate: impl FnOnce(&mut Vec<Arg>) -> String,
    args: &mut Vec<Arg>,
    t: Option<Terms<'_>>,
    drive: bool,
) -> String {
    let path = json_path(key);
    if let Some(t) = t.filter(|t| t.indexed.contains(&path)) {
        // The same rows `json_each` would give (scalars and array elements; nothing under an object), kept by triggers.
        if drive {
            args.push(Arg::Int(t.cid));
            args.push(Arg::Text(path));
            let pred = predicate(args);
            return format!("{LOOKUP}SELECT je.doc_id FROM doc_terms je WHERE je.collection_id = ? AND je.path = ? AND {pred})");
        }
        args.push(Arg::Text(path));
        let pred = predicate(args);
        return format!("EXISTS (SELECT 1 FROM doc_terms je WHERE je.doc_id = d.id AND je.path = ? AND {pred})");
    }
    args.push(Arg::Text(path.clone()));
    let pred = predicate(args);
    args.push(Arg::Text(path));
    format!("(EXISTS (SELECT 1 FROM json_each(d.meta, ?) je WHERE {pred}) AND coalesce(json_type(d.meta, ?) <> 'object', 0))")
}

/// `drive`: the condition is the lookup the query starts from (see [`Terms::drive`]).
fn condition_sql(c: &Condition, args: &mut Vec<Arg>, t: Option<Terms<'_>>, drive: bool) -> String {
    match c {
        Condition::Match { key, value } => any_element(key, |a| match_sql(value, a), args, t, drive),
        Condition::MatchAny { key, any } => {
            if any.is_empty() {
                return "0".into();
            }
            any_element(key, |a| format!("({})", any.iter().map(|v| match_sql(v, a)).collect::<Vec<_>>().join(" OR ")), args, t, drive)
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
            t,
            drive,
        ),
        Condition::IsEmpty { key } => {
            let path = json_path(key);
            for _ in 0..3 {
                args.push(Arg::Text(path.clone()));
            }
            "(coalesce(json_type(d.meta, ?), 'null') = 'null' OR (json_type(d.meta, ?) = 'array' AND json_array_length(d.meta, ?) = 0))"
                .into()
        }
        Condition::Nested(f) => filter_sql(f, args, t),
    }
}

/// SQL for a filter; always evaluates to 0 or 1, never NULL.
pub(crate) fn filter_sql(f: &Filter, args: &mut Vec<Arg>, t: Option<Terms<'_>>) -> String {
    let mut parts = Vec::new();
    for c in &f.must {
        parts.push(condition_sql(c, args, t, false));
    }
    if !f.should.is_empty() {
        let any: Vec<_> = f.should.iter().map(|c| condition_sql(c, args, t, false)).collect();
        parts.push(format!("({})", any.join(" OR ")));
    }
    for c in &f.must_not {
        parts.push(format!("NOT {}", condition_sql(c, args, t, false)));
    }
    if parts.is_empty() { "1".into() } else { format!("coalesce(({}), 0)", parts.join(" AND ")) }
}

/// SQL for a `--where` expression; always evaluates to 0 or 1, never NULL. An `and` of key, time or metadata
/// conditions stays a flat conjunction, so the planner can use the key and time indexes; with `t`, tags and indexed
/// fields are looked up in `doc_terms`.
pub(crate) fn doc_filter_sql(e: &DocFilter, args: &mut Vec<Arg>, t: Option<Terms<'_>>) -> String {
    let join = |parts: &[DocFilter], op: &str, empty: &str, args: &mut Vec<Arg>| {
        if parts.is_empty() {
            return empty.to_owned();
        }
        let parts: Vec<String> = parts.iter().map(|p| doc_filter_sql(p, args, t)).collect();
        format!("({})", parts.join(op))
    };
    match e {
        DocFilter::All(parts) => join(parts, " AND ", "1", args),
        DocFilter::Any(parts) => join(parts, " OR ", "0", args),
        DocFilter::Not(p) => format!("(NOT {})", doc_filter_sql(p, args, t)),
        DocFilter::Meta(c) => {
            let sql = condition_sql(c, args, t, drives(e, t));
            // A lookup is never NULL, and wrapped in a function the planner could not drive the query from it.
            if sql.starts_with(LOOKUP) { sql } else { format!("coalesce({sql}, 0)") }
        }
        DocFilter::Tag(tag) => tag_sql(tag.as_str(), args, t, drives(e, t)),
        DocFilter::KeyPrefix(p) => key_prefix_sql(p, args),
        DocFilter::Created(r) => time_range_sql("d.created_at", r, args),
        DocFilter::Updated(r) => time_range_sql("d.updated_at", r, args),
        DocFilter::State(s) => {
            let state = match s {
                SyncState::Pending => "pending",
                SyncState::Synced => "synced",
                SyncState::Failed => "failed",
            };
            match t {
                // Every document has a ledger row (migration 0002), looked up by `sync_ledger_state`.
                Some(t) => {
                    args.extend([Arg::Int(t.cid), Arg::Text(state.into())]);
                    "d.key IN (SELECT key FROM sync_ledger WHERE collection_id = ? AND state = ?)".into()
                }
                None => {
                    args.push(Arg::Text(state.into()));
                    "EXISTS (SELECT 1 FROM sync_ledger l WHERE l.collection_id = d.collection_id AND l.key = d.key AND l.state = ?)".into()
                }
            }
        }
    }
}

/// Documents with the tag: with `t`, the ids `doc_terms` lists (`drive`) or a probe of the document's terms; else a
/// look at each document's tags.
fn tag_sql(tag: &str, args: &mut Vec<Arg>, t: Option<Terms<'_>>, drive: bool) -> String {
    match t {
        Some(t) if drive => {
            args.extend([Arg::Int(t.cid), Arg::Text(tag.to_owned())]);
            format!("{LOOKUP}SELECT doc_id FROM doc_terms WHERE collection_id = ? AND path = '#tag' AND type = 'text' AND value = ?)")
        }
        Some(_) => {
            args.push(Arg::Text(tag.to_owned()));
            "EXISTS (SELECT 1 FROM doc_terms WHERE doc_id = d.id AND path = '#tag' AND type = 'text' AND value = ?)".into()
        }
        None => {
            args.push(Arg::Text(tag.to_owned()));
            "EXISTS (SELECT 1 FROM json_each(d.tags) jt WHERE jt.value = ?)".into()
        }
    }
}

/// The smallest string greater than every string that starts with `prefix` (`None` when there is none): keys with
/// the prefix are exactly those in `[prefix, bound)`, since UTF-8 byte order is code point order.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Keys starting with `prefix`, as a range on the key index.
fn key_prefix_sql(prefix: &str, args: &mut Vec<Arg>) -> String {
    if prefix.is_empty() {
        return "1".into();
    }
    args.push(Arg::Text(prefix.to_owned()));
    match prefix_upper_bound(prefix) {
        Some(bound) => {
            args.push(Arg::Text(bound));
            "(d.key >= ? AND d.key < ?)".into()
        }
        None => {
            args.push(Arg::Text(prefix.to_owned()));
            args.push(Arg::Text(prefix.to_owned()));
            "(d.key >= ? AND substr(d.key, 1, length(?)) = ?)".into()
        }
    }
}

fn time_range_sql(col: &str, r: &TimeRange, args: &mut Vec<Arg>) -> String {
    let mut parts = Vec::new();
    if let Some(s) = r.since {
        parts.push(format!("{col} >= ?"));
        args.push(Arg::Int(s.as_millis()));
    }
    if let Some(u) = r.until {
        parts.push(format!("{col} < ?"));
        args.push(Arg::Int(u.as_millis()));
    }
    if parts.is_empty() { "1".into() } else { format!("({})", parts.join(" AND ")) }
}

/// Documents after the cursor in the listing's order (ties broken by key ascending, as [`order_by`] sorts).
fn after_sql(q: &ListQuery, c: &Cursor, args: &mut Vec<Arg>) -> String {
    let key = Arg::Text(c.key.as_str().to_owned());
    let col = match q.sort {
        SortField::Key => {
            args.push(key);
            return if q.order == SortOrder::Desc { "d.key < ?".into() } else { "d.key > ?".into() };
        }
        SortField::UpdatedAt => "d.updated_at",
        SortField::CreatedAt => "d.created_at",
        SortField::Size => "d.size",
    };
    let beyond = if q.order == SortOrder::Desc { "<" } else { ">" };
    args.extend([Arg::Int(c.value), Arg::Int(c.value), key]);
    format!("({col} {beyond} ? OR ({col} = ? AND d.key > ?))")
}

/// The full `WHERE` for a listing in collection `t.cid`.
pub(crate) fn where_clause(t: Terms<'_>, q: &ListQuery) -> Where {
    let mut args = vec![Arg::Int(t.cid)];
    // With a `doc_terms` lookup among the conditions every match must meet, `+` keeps the planner from walking the
    // collection's documents in key order (its choice without statistics) and makes it start from the lookup's ids:
    // a selective filter then reads the few documents it lists, not every document of the collection.
    let driven = !q.tags.is_empty() || t.drive.is_some();
    let mut sql = String::from(if driven { "+d.collection_id = ?" } else { "d.collection_id = ?" });
    for (i, tag) in q.tags.iter().enumerate() {
        sql.push_str(" AND ");
        // `--tag` (the listing's own tags) drives when the expression has no lookup that does.
        sql.push_str(&tag_sql(tag.as_str(), &mut args, Some(t), i == 0 && t.drive.is_none()));
    }
    for (col, range) in [("d.created_at", &q.created), ("d.updated_at", &q.updated)] {
        if range.since.is_some() || range.until.is_some() {
            sql.push_str(" AND ");
            sql.push_str(&time_range_sql(col, range, &mut args));
        }
    }
    if let Some(p) = &q.key_prefix {
        sql.push_str(" AND ");
        sql.push_str(&key_prefix_sql(p, &mut args));
    }
    if !q.filter.is_empty() {
        sql.push_str(" AND ");
        sql.push_str(&filter_sql(&q.filter, &mut args, Some(t)));
    }
    if !q.expr.is_everything() {
        sql.push_str(" AND ");
        sql.push_str(&doc_filter_sql(&q.expr, &mut args, Some(t)));
    }
    Where { sql, args, driven }
}

/// The `WHERE` of one page: the listing's, and after the cursor when there is one (not counted in the total).
pub(crate) fn page_where_clause(t: Terms<'_>, q: &ListQuery) -> Where {
    let mut w = where_clause(t, q);
    if let Some(c) = &q.after {
        w.sql.push_str(" AND ");
        let after = after_sql(q, c, &mut w.args);
        w.sql.push_str(&after);
    }
    w
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
        let now = colstore_domain::Timestamp::from_millis(0);
        let metadata = "lang=en and year>=2000 and x!=1 and t in a,b and z exists and w missing";
        let mut q = ListQuery { filter: DocFilter::parse(metadata, now).unwrap().as_metadata_filter().unwrap(), ..ListQuery::default() };
        q.expr = DocFilter::parse("tag:a or (key:n and not created:>=7d) or updated:1d..2d", colstore_domain::Timestamp::from_millis(0))
            .unwrap();
        q.key_prefix = Some("x".into());
        q.after =
            Some(Cursor { sort: SortField::Size, order: SortOrder::Desc, value: 3, key: colstore_domain::DocKey::parse("k").unwrap() });
        q.sort = SortField::Size;
        for indexed in [vec![], vec![json_path(&FieldPath::parse("year").unwrap()), json_path(&FieldPath::parse("t").unwrap())]] {
            let base = Terms { cid: 1, indexed: &indexed, drive: None };
            let w = page_where_clause(Terms { drive: lookups(&q.expr, &base).first().copied(), ..base }, &q);
            assert_eq!(w.sql.matches('?').count(), w.args.len(), "{}", w.sql);
            assert_eq!(w.sql.contains("doc_terms je"), !indexed.is_empty(), "{}", w.sql);
        }
    }

    #[test]
    fn prefix_bounds_are_the_next_string() {
        assert_eq!(prefix_upper_bound("notes/").as_deref(), Some("notes0"));
        assert_eq!(prefix_upper_bound("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    }
}
