//! `col watch`: run a step (reconcile, then sync) once at start and again after every burst of changes.
//!
//! The signals come from file-system notifications or a polling timer (the shell picks); this loop only debounces
//! them: after a signal it waits until no new one arrived for `debounce`, so an editor's save (write temp file,
//! rename, chmod) or a `git checkout` of many files runs one step, not dozens.

use std::time::Duration;

use colstore_domain::ports::Clock;
use futures::future::{BoxFuture, Either, select};
use futures::stream::{Stream, StreamExt};

/// Why [`watch`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEnd {
    /// The signals ended (the shell closes them on Ctrl-C or when the watcher fails).
    SignalsEnded,
    /// A step asked to stop.
    StepStopped,
}

/// Runs `step` once, then once after each burst of `signals`, until the signals end or a step returns `false`.
/// A burst is over when no signal arrived for `debounce` (measured on `clock`). Signals that arrive while a step
/// runs start the next burst, so no change is missed.
pub async fn watch<'a, S, F>(signals: &mut S, clock: &dyn Clock, debounce: Duration, mut step: F) -> WatchEnd
where
    S: Stream<Item = ()> + Unpin + Send + ?Sized,
    F: FnMut() -> BoxFuture<'a, bool> + Send,
{
    loop {
        if !step().await {
            return WatchEnd::StepStopped;
        }
        // Wait for the first signal of the next burst.
        if signals.next().await.is_none() {
            return WatchEnd::SignalsEnded;
        }
        // Then for quiet.
        loop {
            let quiet = clock.sleep(debounce);
            match select(signals.next(), quiet).await {
                Either::Left((Some(()), _)) => continue,
                Either::Left((None, _)) => return WatchEnd::SignalsEnded,
                Either::Right(((), _)) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use colstore_domain::Timestamp;

    /// A clock whose sleeps end at once, so a burst ends as soon as the signals pause.
    struct InstantClock;

    #[async_trait::async_trait]
    impl Clock for InstantClock {
        fn now(&self) -> Timestamp {
            Timestamp::EPOCH
        }
        async fn sleep(&self, _: Duration) {
            // Yield so that ready signals win the race against the sleep.
            tokio::task::yield_now().await;
        }
    }

    fn counting_step(n: &Arc<AtomicUsize>, stop_after: usize) -> impl FnMut() -> BoxFuture<'static, bool> + Send {
        let n = Arc::clone(n);
        move || {
            let n = Arc::clone(&n);
            Box::pin(async move { n.fetch_add(1, Ordering::SeqCst) + 1 < stop_after })
        }
    }

    #[tokio::test]
    async fn runs_once_at_start_and_stops_when_the_signals_end() {
        let n = Arc::new(AtomicUsize::new(0));
        let mut signals = futures::stream::empty::<()>();
        assert_eq!(watch(&mut signals, &InstantClock, Duration::from_millis(50), counting_step(&n, 100)).await, WatchEnd::SignalsEnded);
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_burst_of_signals_runs_one_step() {
        let n = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = futures::channel::mpsc::unbounded::<()>();
        for _ in 0..20 {
            tx.unbounded_send(()).unwrap();
        }
        drop(tx);
        let mut signals = rx;
        // The 20 signals are one burst; the channel then ends, ending the watch before a second step.
        assert_eq!(watch(&mut signals, &InstantClock, Duration::from_millis(50), counting_step(&n, 100)).await, WatchEnd::SignalsEnded);
        assert_eq!(n.load(Ordering::SeqCst), 1, "the initial step; the burst ended with the signals");
    }

    #[tokio::test]
    async fn separate_bursts_run_separate_steps_until_a_step_stops() {
        let n = Arc::new(AtomicUsize::new(0));
        // Endless single signals with quiet between them: every one is a burst.
        let mut signals = Box::pin(futures::stream::repeat(()).then(|()| async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }));
        assert_eq!(watch(&mut signals, &InstantClock, Duration::from_millis(1), counting_step(&n, 3)).await, WatchEnd::StepStopped);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }
}
