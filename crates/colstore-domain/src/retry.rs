//! Retry timing: exponential backoff with full jitter, capped, for jobs and remote calls.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When to try again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Delay scale of the first retry.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Attempts in all (the first try included) before giving up.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base: Duration::from_millis(500), max: Duration::from_secs(60), max_attempts: 5 }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1 = the first retry), or `None` when attempts are used up.
    ///
    /// The delay is `random(0.5, 1.0) × min(max, base × 2^(attempt-1))` ("equal jitter"): it grows exponentially and
    /// never collapses to zero, while clients that failed together spread out. `random` is a uniform `u64` supplied
    /// by the caller, which keeps this function pure and testable.
    pub fn delay(&self, attempt: u32, random: u64) -> Option<Duration> {
        if attempt == 0 || attempt >= self.max_attempts {
            return None;
        }
        let exp = self.base.saturating_mul(1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX)).min(self.max);
        let fraction = 0.5 + 0.5 * (random as f64 / u64::MAX as f64);
        Some(exp.mul_f64(fraction))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_jittered_and_ends() {
        let p = RetryPolicy { base: Duration::from_secs(1), max: Duration::from_secs(10), max_attempts: 6 };
        assert_eq!(p.delay(1, u64::MAX), Some(Duration::from_secs(1)));
        assert_eq!(p.delay(1, 0), Some(Duration::from_millis(500)));
        assert_eq!(p.delay(3, u64::MAX), Some(Duration::from_secs(4)));
        assert_eq!(p.delay(5, u64::MAX), Some(Duration::from_secs(10)));
        assert_eq!(p.delay(6, u64::MAX), None);
        assert_eq!(p.delay(0, 0), None);
        let d = p.delay(2, u64::MAX / 3).unwrap();
        assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
        assert!(RetryPolicy { max_attempts: 100, ..p }.delay(60, 1).is_some(), "no overflow");
    }
}
