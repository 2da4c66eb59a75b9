//! The testkit's own integration tests: the `CollectionRepo` suite against `InMemoryRepo`, the fake's extras, and the
//! manual clock.

mod clock;
mod fake_repo;
