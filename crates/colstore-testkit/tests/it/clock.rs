//! `ManualClock`: time moves only when the test moves it, and `sleep` wakes exactly then.

use std::sync::Arc;
use std::time::Duration;

use colstore_domain::Timestamp;
use colstore_domain::ports::Clock;
use colstore_testkit::ManualClock;

#[test]
fn now_moves_only_on_advance() {
    let clock = ManualClock::at_2024();
    let t0 = clock.now();
    assert_eq!(t0.to_string(), "2024-01-01T00:00:00.000Z");
    assert_eq!(clock.now(), t0, "time stands still");
    clock.advance(Duration::from_millis(1500));
    assert_eq!(clock.now(), Timestamp::from_millis(t0.as_millis() + 1500));
    assert_eq!(ManualClock::new(Timestamp::EPOCH).now(), Timestamp::EPOCH);
}

#[tokio::test]
async fn sleep_returns_only_after_enough_advance() {
    let clock = ManualClock::at_2024();
    let mut sleep = std::pin::pin!(clock.sleep(Duration::from_secs(10)));
    assert!(futures::poll!(sleep.as_mut()).is_pending(), "sleep waits while time stands still");
    clock.advance(Duration::from_secs(4));
    assert!(futures::poll!(sleep.as_mut()).is_pending(), "4 s of 10 s is not enough");
    clock.advance(Duration::from_secs(6));
    assert!(futures::poll!(sleep.as_mut()).is_ready(), "sleep returns once 10 s have passed");
}

#[tokio::test]
async fn zero_sleep_returns_at_once() {
    let clock = ManualClock::at_2024();
    assert!(futures::poll!(std::pin::pin!(clock.sleep(Duration::ZERO))).is_ready());
}

#[tokio::test(flavor = "current_thread")]
async fn advance_wakes_a_sleeping_task() {
    let clock = Arc::new(ManualClock::at_2024());
    let start = clock.now();
    let sleeper = tokio::spawn({
        let clock = Arc::clone(&clock);
        async move {
            clock.sleep(Duration::from_secs(60)).await;
            clock.now()
        }
    });
    // On a current-thread runtime, yielding lets the spawned task run until it waits on the clock.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!sleeper.is_finished(), "the task sleeps until the clock moves");
    clock.advance(Duration::from_secs(30));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!sleeper.is_finished(), "half the time is not enough");
    clock.advance(Duration::from_secs(30));
    let woke_at = sleeper.await.expect("sleeper task");
    assert_eq!(woke_at, start.plus_millis(60_000), "it wakes when the clock reaches its deadline");
}
