//! colstore's use cases, written once against the ports so the CLI and the server share them.
//!
//! Each use case takes its ports as `Arc<dyn Port>` and reports progress through a callback, never through the
//! terminal. Architecture invariant: this crate depends on the domain only, never on an adapter or a shell.

mod add;
mod adopt;
pub mod backup;
mod clear;
mod collections;
pub mod commit_log;
mod documents;
mod export;
mod flush;
pub mod front_matter;
mod jobs;
mod migrate;
mod projection;
mod reconcile;
mod reconcile_all;
mod remove;
mod search;
mod status;
mod sync;
mod sync_jobs;
mod verify;
mod watch;

pub use add::{AddError, AddEvent, AddOptions, AddReport, AddWarning, Skipped, Source, add_paths, add_paths_until, plan_sources};
pub use adopt::{ADOPT_PAGE, AdoptError, AdoptOptions, AdoptProgress, AdoptReport, AdoptSample, AdoptSkip, MAX_LISTED_SKIPS, adopt};
pub use clear::{ClearProjection, ClearReport, ClearTarget, clear_collection, clear_collections, plan_clear, retire_deleted};
pub use collections::{FusionChange, FusionError, IndexChange, change_fusion, create_collection, index_field};
pub use documents::{CHECK_IN_MEMORY, ReadError, ReadMode, ReadReport, collect_garbage, put_document, read_document};
pub use export::{
    EXPORT_FORMAT, EXPORT_VERSION, ExportError, ExportReport, ExportScope, ImportOutcome, ImportPlan, ImportRunError, MAX_LINE_BYTES,
    decode_export, export, export_to, import, plan_import, run_import,
};
pub use flush::{FlushStep, flush};
pub use jobs::{cancel_job, retry_job};
pub use migrate::{MigrationError, MigrationFailure, MigrationOutcome, run_migration};
pub use projection::{
    CollectionStatus, Drift, IndexReport, MoveError, MoveReport, SettingsChange, Status, TargetHealth, change_settings, move_index,
    reindex, status, verify_index, verify_indexes,
};
pub use reconcile::{
    ChangeCounts, DEFAULT_MAX_DELETE_RATIO, ReconcileError, ReconcileOptions, ReconcilePlan, ReconcileReport, Refusal,
    apply_plan as apply_reconcile_plan, change_key, plan as plan_reconcile, reconcile,
};
pub use reconcile_all::{
    FilePorts, ReconcileAllError, ReconcileOutcome, ReconcileSyncError, reconcile_and_sync, reconcile_collections, refusal_error,
};
pub use remove::{CollectionDeleteReport, RemoveError, RemovePlan, RemoveReport, delete_collection, plan_remove, remove_documents};
pub use search::{Found, SearchHit, SearchMode, SearchOptions, SearchResults, Side, search};
pub use status::{JobCounts, StatusError, StoreStatus, store_status};
pub use sync::{
    CancelToken, Checkpoint, FailedDocument, OneIndex, SyncFailure, SyncOptions, SyncPorts, SyncProgress, SyncReport, index_name,
    sync_collection, sync_collection_until,
};
pub use sync_jobs::{CollectionOutcome, CollectionRun, SYNC_JOB_KIND, StopReason, SyncRun, SyncRunEvent, SyncRunOptions, run_sync};
pub use verify::{TextVerify, VerifyReport, verify, verify_text};
pub use watch::{WatchEnd, watch};
