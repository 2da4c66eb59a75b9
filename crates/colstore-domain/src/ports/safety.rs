//! `SafetyNet`: what a destructive operation keeps first, so that it can be undone.
//!
//! The use cases decide *when* a safety copy is due (before `col rm` deletes a document that exists, before
//! `col collection delete`, before `col clear`); the implementation, in `colstore-wiring`, knows *how* for the store's
//! storage mode.

use async_trait::async_trait;
use serde::Serialize;

use crate::CollectionName;

/// What was kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SafetyCopy {
    /// A verified copy of the whole database, at this path (sqlite mode: the database holds the contents too).
    Database(String),
    /// A backup of the affected collections into the store's backup repository, with this id (filesystem mode: the
    /// files are the content, which a copy of the database would not hold).
    Backup(String),
}

/// Why no safety copy could be taken; the caller then changes nothing. The source is the implementation's own error
/// (a read-only store, a failed backup), for the shell to explain.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SafetyError(pub Box<dyn std::error::Error + Send + Sync>);

/// Keeps what a destructive operation is about to change.
///
/// # Contract
/// - Both methods MUST return only once the copy is complete and checked (read back, or verified); an error means
///   nothing usable was kept, and the caller MUST NOT go on with the destructive step.
/// - `operation` is a short name of what follows (`rm`, `collection-delete`, `clear`), used to name or tag the copy.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SafetyNet: Send + Sync {
    /// The cheapest complete copy of `collections` for the store's storage mode: a copy of the database in sqlite
    /// mode, a backup of the collections in filesystem mode.
    async fn keep(&self, collections: &[CollectionName], operation: &str) -> Result<SafetyCopy, SafetyError>;

    /// A backup of `collections` into the store's repository, whatever the mode (restorable with `col restore`).
    async fn backup(&self, collections: &[CollectionName], operation: &str) -> Result<SafetyCopy, SafetyError>;

    /// A verified copy of the store's database, whatever the mode: what a forced `col reconcile` would lose is the
    /// metadata, tags and ledger of documents whose files are already gone (so a backup could not read them).
    async fn copy_database(&self, operation: &str) -> Result<SafetyCopy, SafetyError>;
}
