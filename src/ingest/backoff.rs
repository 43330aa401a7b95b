//! Reconnect delays: exponential from `base` to `max`, with full jitter so many daemons (or
//! many sources) restarting together do not hammer a relay in lockstep.

use std::time::Duration;

/// An endless iterator of reconnect delays.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Delays start near `base` and double up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// After a connection that worked: start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(16));
        let cap = exp.min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // Full jitter between half the cap and the cap: never zero, never in lockstep.
        let half = cap / 2;
        let jitter = half.mul_f64(fastrand::f64());
        Some(half + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next().expect("endless");
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let later: Vec<Duration> = b.by_ref().take(10).collect();
        assert!(later.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(
            later[9] >= Duration::from_secs(1),
            "capped delays stay in the upper half"
        );
        b.reset();
        assert!(b.next().expect("endless") <= Duration::from_millis(100));
    }
}
