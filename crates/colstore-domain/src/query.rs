//! Listing documents: the query and the page it returns.

use serde::{Deserialize, Serialize};

use crate::{DocFilter, DocKey, DocumentMeta, Filter, Tag, Timestamp, ValidationError};

/// A half-open time range `[since, until)`; unset ends are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TimeRange {
    /// Inclusive lower bound.
    pub since: Option<Timestamp>,
    /// Exclusive upper bound.
    pub until: Option<Timestamp>,
}

impl TimeRange {
    /// Whether `t` lies in the range.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// The field a listing is sorted by. Ties are always broken by key, ascending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    /// Document key (byte order).
    #[default]
    Key,
    /// Last change.
    UpdatedAt,
    /// Creation.
    CreatedAt,
    /// Content size.
    Size,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// Which documents to list, in what order, and which page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListQuery {
    /// Every tag here must be on the document.
    pub tags: Vec<Tag>,
    /// A metadata filter.
    pub filter: Filter,
    /// A `--where` expression (the filter language: metadata, tags, key prefix, times, `and`/`or`/`not`).
    pub expr: DocFilter,
    /// Restricts `created_at`.
    pub created: TimeRange,
    /// Restricts `updated_at`.
    pub updated: TimeRange,
    /// Only documents whose key starts with this prefix.
    pub key_prefix: Option<String>,
    /// Sort field.
    pub sort: SortField,
    /// Sort direction.
    pub order: SortOrder,
    /// At most this many documents; `None` means all.
    pub limit: Option<u64>,
    /// Skip this many matching documents first (after the cursor, when there is one).
    pub offset: u64,
    /// Only documents after this cursor in the query's order (keyset paging: stable under concurrent writes).
    pub after: Option<Cursor>,
}

impl ListQuery {
    /// Whether a document passes the query's conditions (ignoring order and paging). The reference semantics.
    pub fn matches(&self, d: &DocumentMeta) -> bool {
        self.matches_in(d, None)
    }

    /// Whether `d`, whose sync state is `state`, matches (see [`DocFilter::matches_in`]).
    pub fn matches_in(&self, d: &DocumentMeta, state: Option<crate::ports::SyncState>) -> bool {
        d.tags.contains_all(&self.tags)
            && self.filter.matches(&d.metadata.0)
            && self.created.contains(d.created_at)
            && self.updated.contains(d.updated_at)
            && self.key_prefix.as_deref().is_none_or(|p| d.key.as_str().starts_with(p))
            && self.expr.matches_in(d, state)
    }

    /// The value a document is sorted by (0 when sorting by key).
    fn sort_value(&self, d: &DocumentMeta) -> i64 {
        match self.sort {
            SortField::Key => 0,
            SortField::UpdatedAt => d.updated_at.as_millis(),
            SortField::CreatedAt => d.created_at.as_millis(),
            SortField::Size => i64::try_from(d.size).unwrap_or(i64::MAX),
        }
    }

    /// The cursor just after `d` in this query's order: pass it as [`ListQuery::after`] for the next page.
    pub fn cursor_after(&self, d: &DocumentMeta) -> Cursor {
        Cursor { sort: self.sort, order: self.order, value: self.sort_value(d), key: d.key.clone() }
    }

    /// Whether `d` comes after the cursor in this query's order (ties on the sort value broken by key, ascending).
    pub fn is_after(&self, d: &DocumentMeta, cursor: &Cursor) -> bool {
        let value = self.sort_value(d).cmp(&cursor.value);
        let value = if self.order == SortOrder::Desc { value.reverse() } else { value };
        let key = d.key.as_str().as_bytes().cmp(cursor.key.as_str().as_bytes());
        let key = if self.sort == SortField::Key && self.order == SortOrder::Desc { key.reverse() } else { key };
        value.then(key).is_gt()
    }

    /// One page of `docs`: those that match, in order, after the cursor, offset and limited. The reference paging
    /// every repository is tested against.
    pub fn page(&self, docs: impl IntoIterator<Item = DocumentMeta>) -> Page<DocumentMeta> {
        self.page_in(docs.into_iter().map(|d| (d, None)))
    }

    /// [`ListQuery::page`] of documents with their sync states (for `state:` conditions).
    pub fn page_in(&self, docs: impl IntoIterator<Item = (DocumentMeta, Option<crate::ports::SyncState>)>) -> Page<DocumentMeta> {
        let mut matching: Vec<DocumentMeta> = docs.into_iter().filter(|(d, s)| self.matches_in(d, *s)).map(|(d, _)| d).collect();
        self.sort(&mut matching);
        let total = matching.len() as u64;
        let offset = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let limit = self.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        let items =
            matching.into_iter().filter(|d| self.after.as_ref().is_none_or(|c| self.is_after(d, c))).skip(offset).take(limit).collect();
        Page { items, total }
    }

    /// Sorts documents as the query asks, ties broken by key ascending. The reference order.
    pub fn sort(&self, docs: &mut [DocumentMeta]) {
        docs.sort_by(|a, b| {
            let primary = match self.sort {
                SortField::Key => a.key.as_str().as_bytes().cmp(b.key.as_str().as_bytes()),
                SortField::UpdatedAt => a.updated_at.cmp(&b.updated_at),
                SortField::CreatedAt => a.created_at.cmp(&b.created_at),
                SortField::Size => a.size.cmp(&b.size),
            };
            let primary = if self.order == SortOrder::Desc { primary.reverse() } else { primary };
            primary.then_with(|| a.key.as_str().as_bytes().cmp(b.key.as_str().as_bytes()))
        });
    }
}

/// Where a page of a listing ended: the sort value and key of its last document. Users see it as an opaque token
/// (`col ls --after TOKEN`), printed by `col ls --json` as `next`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The sort it belongs to.
    pub sort: SortField,
    /// The direction it belongs to.
    pub order: SortOrder,
    /// The last document's sort value (milliseconds for times, bytes for size, 0 for key).
    pub value: i64,
    /// The last document's key.
    pub key: DocKey,
}

impl Cursor {
    /// The token form: `c1.<sort><order>.<value>.<key as hex>`, safe in a shell and a URL.
    pub fn encode(&self) -> String {
        let sort = match self.sort {
            SortField::Key => 'k',
            SortField::UpdatedAt => 'u',
            SortField::CreatedAt => 'c',
            SortField::Size => 's',
        };
        let order = if self.order == SortOrder::Desc { 'd' } else { 'a' };
        let hex: String = self.key.as_str().bytes().map(|b| format!("{b:02x}")).collect();
        format!("c1.{sort}{order}.{}.{hex}", self.value)
    }

    /// Reads a token made by [`Cursor::encode`].
    ///
    /// # Errors
    /// A [`ValidationError`] when the token is damaged.
    pub fn decode(token: &str) -> Result<Self, ValidationError> {
        let bad = || ValidationError::new("cursor", token, "it is not a cursor printed by `col ls --json` (\"next\"); copy it whole");
        let mut parts = token.trim().split('.');
        let (Some("c1"), Some(shape), Some(value), Some(hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let mut shape = shape.chars();
        let sort = match shape.next() {
            Some('k') => SortField::Key,
            Some('u') => SortField::UpdatedAt,
            Some('c') => SortField::CreatedAt,
            Some('s') => SortField::Size,
            _ => return Err(bad()),
        };
        let order = match (shape.next(), shape.next()) {
            (Some('a'), None) => SortOrder::Asc,
            (Some('d'), None) => SortOrder::Desc,
            _ => return Err(bad()),
        };
        let value = value.parse().map_err(|_| bad())?;
        if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16)).collect::<Result<_, _>>().map_err(|_| bad())?;
        let key = String::from_utf8(bytes).ok().and_then(|k| DocKey::parse(&k).ok()).ok_or_else(bad)?;
        Ok(Self { sort, order, value, key })
    }

    /// Checks that the cursor belongs to a listing sorted as `query` is.
    ///
    /// # Errors
    /// A [`ValidationError`] saying which sort the cursor was made for.
    pub fn check_fits(&self, query: &ListQuery) -> Result<(), ValidationError> {
        if self.sort == query.sort && self.order == query.order {
            return Ok(());
        }
        let sort = match self.sort {
            SortField::Key => "key",
            SortField::UpdatedAt => "updated",
            SortField::CreatedAt => "created",
            SortField::Size => "size",
        };
        let desc = if self.order == SortOrder::Desc { " --desc" } else { "" };
        Err(ValidationError::new(
            "cursor",
            &self.encode(),
            format!("it continues a listing sorted with --sort {sort}{desc}; page with the same --sort and --desc"),
        ))
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// How many items match in total, ignoring limit and offset.
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(SortField::Key, SortOrder::Asc, 0, "notes/a.md")]
    #[case(SortField::UpdatedAt, SortOrder::Desc, -5, "ü/ß é.txt")]
    #[case(SortField::Size, SortOrder::Asc, i64::MAX, "x")]
    fn cursors_survive_their_token(#[case] sort: SortField, #[case] order: SortOrder, #[case] value: i64, #[case] key: &str) {
        let c = Cursor { sort, order, value, key: DocKey::parse(key).unwrap() };
        let token = c.encode();
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'), "{token}");
        assert_eq!(Cursor::decode(&token).unwrap(), c);
    }

    #[rstest]
    #[case("")]
    #[case("c1.ka.0")]
    #[case("c2.ka.0.61")]
    #[case("c1.xa.0.61")]
    #[case("c1.kad.0.61")]
    #[case("c1.ka.zero.61")]
    #[case("c1.ka.0.6")]
    #[case("c1.ka.0.zz")]
    #[case("c1.ka.0.ff")]
    #[case("c1.ka.0.61.62")]
    fn damaged_cursors_are_refused(#[case] token: &str) {
        let e = Cursor::decode(token).unwrap_err().to_string();
        assert!(e.contains("copy it whole"), "{e}");
    }

    #[test]
    fn a_cursor_only_continues_its_own_sort() {
        let c = Cursor { sort: SortField::Size, order: SortOrder::Desc, value: 1, key: DocKey::parse("a").unwrap() };
        let e = c.check_fits(&ListQuery::default()).unwrap_err().to_string();
        assert!(e.contains("--sort size --desc"), "{e}");
        assert!(c.check_fits(&ListQuery { sort: SortField::Size, order: SortOrder::Desc, ..ListQuery::default() }).is_ok());
    }
}
