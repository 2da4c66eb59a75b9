//! `Clock`: every time decision goes through it, so tests use a manual clock and never sleep.

use std::time::Duration;

use async_trait::async_trait;

use crate::Timestamp;

/// The source of time.
///
/// # Contract
/// `now` MUST never go backwards within one process. `sleep` MUST return once `now` has advanced by at least `d`
/// (a manual clock returns when the test advances it).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Waits until `d` has passed on this clock.
    async fn sleep(&self, d: Duration);
}
