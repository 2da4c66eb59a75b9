//! Test support for colstore: one conformance suite per port, faithful in-memory fakes (including `InMemoryFiles`,
//! the filesystem mode's document folder), and a manual clock.
//!
//! This crate is a dev-dependency only (the `xtask tidy` test enforces it). Adapters run the suites from their own
//! integration tests:
//!
//! ```ignore
//! async fn fixture(clock: std::sync::Arc<colstore_testkit::ManualClock>) -> Box<dyn colstore_testkit::repo::RepoFixture> { ... }
//! colstore_testkit::repo_conformance!(fixture);
//! ```

pub mod backup;
pub mod catalog;
pub mod clock;
pub mod fake_backup;
pub mod fake_files;
pub mod fake_index;
pub mod fake_queue;
pub mod fake_repo;
pub mod files;
pub mod foreign;
pub mod index;
pub mod need;
#[cfg(feature = "qdrant-fake")]
pub mod qdrant_fake;
pub mod queue;
pub mod repo;
#[cfg(feature = "s3-server")]
pub mod s3_server;
pub mod stub_embedder;
pub mod sync;
pub mod text;
#[cfg(feature = "weaviate-fake")]
pub mod weaviate_fake;

pub use clock::{ManualClock, RecordingClock};
pub use fake_backup::InMemoryBackupStore;
pub use fake_files::InMemoryFiles;
pub use fake_index::InMemoryIndex;
pub use fake_queue::InMemoryQueue;
pub use fake_repo::InMemoryRepo;
