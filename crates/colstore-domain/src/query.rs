//! Listing documents: the query and the page it returns.

use serde::{Deserialize, Serialize};

use crate::{DocumentMeta, Filter, Tag, Timestamp};

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
    /// Skip this many matching documents first.
    pub offset: u64,
}

impl ListQuery {
    /// Whether a document passes the query's conditions (ignoring order and paging). The reference semantics.
    pub fn matches(&self, d: &DocumentMeta) -> bool {
        d.tags.contains_all(&self.tags)
            && self.filter.matches(&d.metadata.0)
            && self.created.contains(d.created_at)
            && self.updated.contains(d.updated_at)
            && self.key_prefix.as_deref().is_none_or(|p| d.key.as_str().starts_with(p))
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

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// How many items match in total, ignoring limit and offset.
    pub total: u64,
}
