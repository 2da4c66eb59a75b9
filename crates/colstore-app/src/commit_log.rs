//! Diagnostic events at the two moments the crash tests need to see from outside: when an operation starts changing
//! the store, and each time a write it made is durable. They go to the tracing target [`TARGET`] at debug level, so
//! `RUST_LOG=colstore::commit=debug col add notes docs/` prints, on stderr:
//!
//! ```text
//! DEBUG writing began op="add" collection=notes
//! DEBUG durable op="add" collection=notes documents=256
//! DEBUG durable op="backup" step="20261207T065400Z-1a2b3c4d"
//! ```
//!
//! A `durable` line is printed only after the port call that made those documents durable returned. The crash harness
//! (`tests/e2e/crash`) kills a command only after its first `writing began`, and checks that every document a
//! `durable` line counted survived the kill (docs/TESTING.md).

use colstore_domain::CollectionName;

/// The tracing target of these events.
pub const TARGET: &str = "colstore::commit";

/// `op` is about to change the store (its first write, or its safety copy).
pub(crate) fn began(op: &'static str, collection: Option<&CollectionName>) {
    match collection {
        Some(c) => tracing::debug!(target: TARGET, op, collection = %c, "writing began"),
        None => tracing::debug!(target: TARGET, op, "writing began"),
    }
}

/// A step of `op` that is not about documents is durable: a backup's manifest (`step` is its id), a removed backup
/// (`removed <id>`), the switch of a migration, a collection's switch to another index (`switched to <target>`).
pub(crate) fn durable_step(op: &'static str, step: &str) {
    tracing::debug!(target: TARGET, op, step, "durable");
}

/// `documents` documents of `collection` that `op` created, changed or deleted are durable (unchanged ones are not
/// counted).
pub(crate) fn durable(op: &'static str, collection: &CollectionName, documents: u64) {
    tracing::debug!(target: TARGET, op, collection = %collection, documents, "durable");
}
