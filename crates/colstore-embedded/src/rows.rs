//! [`Rows`]: which rows of a collection a filtered read must visit.

use colstore_domain::{Condition, Filter, MatchValue};

use crate::index::MAX_INDEXED_KEYS;

/// Which rows a filtered scan must read.
#[derive(Debug, PartialEq)]
pub(crate) enum Rows {
    /// Every row of the collection.
    All,
    /// Only the rows of these document keys (read through the `points_by_key` index).
    Keys(Vec<String>),
    /// None: the filter pins the key to something no key can be.
    Nothing,
}

impl Rows {
    /// The rows `filter` can possibly match. A `must` condition `key = "k"` or `key in [...]` restricts them to those
    /// keys: points with other keys fail that condition, so reading only these rows and then applying the whole
    /// filter is exact.
    pub(crate) fn for_filter(filter: Option<&Filter>) -> Self {
        let texts = |values: &mut dyn Iterator<Item = &MatchValue>| -> Vec<String> {
            // A key is always a string: integer or boolean values can never match it.
            values.filter_map(|v| if let MatchValue::Text(t) = v { Some(t.clone()) } else { None }).collect()
        };
        let pinned = filter.into_iter().flat_map(|f| &f.must).find_map(|c| match c {
            Condition::Match { key, value } if key.as_str() == "key" => Some(texts(&mut std::iter::once(value))),
            Condition::MatchAny { key, any } if key.as_str() == "key" && any.len() <= MAX_INDEXED_KEYS => Some(texts(&mut any.iter())),
            _ => None,
        });
        match pinned {
            None => Self::All,
            Some(keys) if keys.is_empty() => Self::Nothing,
            Some(keys) => Self::Keys(keys),
        }
    }

    /// The table to read from: with pinned keys, through the key index (SQLite would otherwise prefer the primary key
    /// when the query also orders by id, and scan the whole collection).
    pub(crate) fn table(&self) -> &'static str {
        match self {
            Self::All | Self::Nothing => "points",
            Self::Keys(_) => "points INDEXED BY points_by_key",
        }
    }

    /// The SQL condition selecting these rows (to follow `WHERE collection_id = ?`), with one `?` per key.
    pub(crate) fn clause(&self) -> String {
        match self {
            Self::All | Self::Nothing => String::new(),
            Self::Keys(keys) => format!(" AND json_extract(payload, '$.key') IN ({})", vec!["?"; keys.len()].join(", ")),
        }
    }

    pub(crate) fn keys(&self) -> &[String] {
        match self {
            Self::Keys(keys) => keys,
            Self::All | Self::Nothing => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: serde_json::Value) -> Rows {
        let f: Filter = serde_json::from_value(v).unwrap_or_default();
        Rows::for_filter(Some(&f))
    }

    #[test]
    fn a_pinned_key_narrows_the_rows_read() {
        assert_eq!(Rows::for_filter(None), Rows::All);
        assert_eq!(rows(json!({"must": [{"match": {"key": "key", "value": "a.md"}}]})), Rows::Keys(vec!["a.md".into()]));
        assert_eq!(
            rows(json!({"must": [{"match_any": {"key": "key", "any": ["a.md", 3, "b.md"]}}]})),
            Rows::Keys(vec!["a.md".into(), "b.md".into()])
        );
        assert_eq!(rows(json!({"must": [{"match": {"key": "key", "value": 3}}]})), Rows::Nothing, "a key is never a number");
        assert_eq!(rows(json!({"must": [{"match_any": {"key": "key", "any": []}}]})), Rows::Nothing);
        // Only `must` pins: `should`, `must_not`, nested filters and other fields read everything.
        assert_eq!(rows(json!({"should": [{"match": {"key": "key", "value": "a.md"}}]})), Rows::All);
        assert_eq!(rows(json!({"must_not": [{"match": {"key": "key", "value": "a.md"}}]})), Rows::All);
        assert_eq!(rows(json!({"must": [{"nested": {"must": [{"match": {"key": "key", "value": "a.md"}}]}}]})), Rows::All);
        assert_eq!(rows(json!({"must": [{"match": {"key": "metadata.key", "value": "a.md"}}]})), Rows::All);
        let many: Vec<String> = (0..=MAX_INDEXED_KEYS).map(|i| format!("{i}.md")).collect();
        assert_eq!(rows(json!({"must": [{"match_any": {"key": "key", "any": many}}]})), Rows::All, "long lists scan");
        assert_eq!(Rows::Keys(vec!["a".into(), "b".into()]).clause(), " AND json_extract(payload, '$.key') IN (?, ?)");
    }
}
