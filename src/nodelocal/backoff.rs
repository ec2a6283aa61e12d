//! Retry delays for failed networking setup passes: 0.5 s, doubling up to a 30 s cap, reset
//! by a pass that succeeds. node-cache only retries at the next `-syncinterval` tick.

use std::time::Duration;

/// First retry delay after a failed pass.
pub const INITIAL: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const CAP: Duration = Duration::from_secs(30);

/// A doubling delay with a cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL, CAP)
    }
}

impl Backoff {
    /// Delays from `initial`, doubling, never above `cap` (`cap` wins if smaller).
    pub fn new(initial: Duration, cap: Duration) -> Self {
        let initial = initial.min(cap);
        Backoff { initial, cap, next: initial }
    }

    /// The delay before the next retry; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = d.saturating_mul(2).min(self.cap);
        d
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let got: Vec<u64> = (0..10).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
        b.reset();
        assert_eq!(b.next_delay(), INITIAL);
    }

    #[test]
    fn cap_below_initial() {
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }
}
