//! When to try a failed step again. A transient failure (throttling, 5xx, a dropped
//! connection, a timeout) of an idempotent step is retried after a capped exponential backoff
//! with jitter; a permanent one is final. The random draw is the caller's, so this stays pure.

use std::time::Duration;

/// `pipeline.retry` in gantry.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: transient failures are final too).
    pub retries: u32,
    /// The first backoff; each retry doubles it.
    pub base: Duration,
    /// No backoff is longer than this.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 5,
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Reports (Discord, GitHub, EventBridge): a target can be down for a while, so they keep
    /// trying for about an hour before giving up until the deployment changes again.
    pub const REPORTS: Self = Self {
        retries: 12,
        base: Duration::from_secs(5),
        cap: Duration::from_secs(600),
    };

    /// How long to wait before retry number `retry` (1 for the first), or `None` when the
    /// retries are used up. `unit` is a uniform draw from [0, 1): "equal jitter", half the
    /// exponential step fixed and half random, so retries of many steps spread out but never
    /// come back sooner than half the step.
    pub fn backoff(&self, retry: u32, unit: f64) -> Option<Duration> {
        if retry == 0 || retry > self.retries {
            return None;
        }
        let step = self
            .base
            .saturating_mul(1u32.checked_shl(retry - 1).unwrap_or(u32::MAX))
            .min(self.cap);
        let half = step / 2;
        Some(half + half.mul_f64(unit.clamp(0.0, 1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            retries: 6,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_then_stops() {
        let p = policy();
        let top: Vec<u64> = (1..=6)
            .map(|n| p.backoff(n, 1.0).unwrap().as_millis() as u64)
            .collect();
        assert_eq!(top, vec![1000, 2000, 4000, 8000, 10000, 10000]);
        assert_eq!(p.backoff(7, 0.5), None);
        assert_eq!(p.backoff(0, 0.5), None);
    }

    #[test]
    fn jitter_keeps_at_least_half_the_step() {
        let p = policy();
        assert_eq!(p.backoff(3, 0.0), Some(Duration::from_secs(2)));
        let mid = p.backoff(3, 0.5).unwrap();
        assert!(mid > Duration::from_secs(2) && mid < Duration::from_secs(4));
        // Out-of-range draws are clamped, never a longer wait than the step.
        assert_eq!(p.backoff(3, 7.0), Some(Duration::from_secs(4)));
    }

    #[test]
    fn huge_retry_numbers_do_not_overflow() {
        let p = RetryPolicy {
            retries: u32::MAX,
            ..policy()
        };
        assert_eq!(p.backoff(200, 1.0), Some(Duration::from_secs(10)));
    }
}
