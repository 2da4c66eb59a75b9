//! A clock that only moves when a test moves it.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use colstore_domain::Timestamp;
use colstore_domain::ports::Clock;
use tokio::sync::Notify;

/// A manual [`Clock`]: `now` returns what the test set; `sleep` waits until the test advances far enough.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
    moved: Notify,
}

impl ManualClock {
    /// A clock at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self { now: Mutex::new(start), moved: Notify::new() }
    }

    /// A clock at 2024-01-01T00:00:00Z.
    pub fn at_2024() -> Self {
        Self::new(Timestamp::from_millis(1_704_067_200_000))
    }

    /// Moves time forward.
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now.plus_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        drop(now);
        self.moved.notify_waiters();
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn sleep(&self, d: Duration) {
        let until = self.now().plus_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        loop {
            let notified = self.moved.notified();
            if self.now() >= until {
                return;
            }
            notified.await;
        }
    }
}

/// A [`Clock`] for retry tests: time comes from a [`ManualClock`], and every `sleep` is recorded and completes at once
/// by advancing that clock, so retries never wait for real and a test can check each delay (`Retry-After` honoured,
/// backoff grown).
#[derive(Debug)]
pub struct RecordingClock {
    manual: ManualClock,
    sleeps: Mutex<Vec<Duration>>,
}

impl RecordingClock {
    /// A clock at 2024-01-01T00:00:00Z that has slept for nothing yet.
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self { manual: ManualClock::at_2024(), sleeps: Mutex::new(Vec::new()) })
    }

    /// Every sleep asked for so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl Clock for RecordingClock {
    fn now(&self) -> Timestamp {
        self.manual.now()
    }

    async fn sleep(&self, d: Duration) {
        self.sleeps.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(d);
        self.manual.advance(d);
    }
}
