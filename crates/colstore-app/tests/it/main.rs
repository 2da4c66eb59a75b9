//! The use cases' integration tests, on the testkit's fakes (one test binary for the crate).

mod backup;
mod documents;
mod export;
mod migrate;
mod move_index;
mod props;
mod reconcile;
mod sync_jobs;
