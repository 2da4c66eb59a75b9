//! The use cases' integration tests, on the testkit's fakes (one test binary for the crate).

mod backup;
mod documents;
mod export;
mod migrate;
mod props;
mod reconcile;
mod sync_jobs;
