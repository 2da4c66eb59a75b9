//! colstore's use cases, written once against the ports so the CLI and the server share them.
//!
//! Each use case takes its ports as `Arc<dyn Port>` and reports progress through a callback, never through the
//! terminal. Architecture invariant: this crate depends on the domain only, never on an adapter or a shell.

mod add;
mod projection;
mod sync;
mod verify;

pub use add::{AddError, AddEvent, AddOptions, AddReport, Skipped, Source, add_paths, plan_sources};
pub use projection::{
    CollectionStatus, Drift, IndexReport, SearchHit, SettingsChange, Status, change_settings, reindex, search, status, verify_index,
};
pub use sync::{FailedDocument, SyncFailure, SyncOptions, SyncPorts, SyncProgress, SyncReport, index_name, sync_collection};
pub use verify::{VerifyReport, verify};
