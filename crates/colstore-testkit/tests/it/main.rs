//! The testkit's own integration tests: the `CollectionRepo` suite against `InMemoryRepo`, the fake's extras, and the
//! manual clock.

mod clock;
mod fake_backup;
mod fake_catalog;
mod fake_files;
mod fake_index;
mod fake_queue;
mod fake_repo;
mod fake_sync;
mod qdrant_fake;
mod qdrant_replay;
#[cfg(feature = "weaviate-fake")]
mod weaviate_fake;
#[cfg(feature = "weaviate-fake")]
mod weaviate_http;
#[cfg(feature = "weaviate-fake")]
mod weaviate_shapes;
