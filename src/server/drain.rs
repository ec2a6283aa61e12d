//! Queries in flight, for a graceful stop: every query the server has read and not yet
//! answered holds an [`InFlight`] guard (queries waiting for an upstream on the direct path are
//! counted by [`crate::memory`]), and [`wait_idle`] waits, bounded, until none is left.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// One query being answered; counted until dropped.
#[must_use = "the query counts as in flight only while the guard lives"]
pub struct InFlight(());

impl InFlight {
    /// Counts one more query in flight.
    pub fn start() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Queries read and not yet answered: chain tasks, TCP queries, and queries waiting for an
/// upstream reply on the direct path.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed) + crate::memory::current()
}

/// Waits until nothing is in flight or `limit` has passed; returns what is still in flight.
pub fn wait_idle(limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let left = in_flight();
        if left == 0 || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_until_dropped() {
        let before = IN_FLIGHT.load(Ordering::Relaxed);
        let a = InFlight::start();
        let b = InFlight::start();
        assert_eq!(IN_FLIGHT.load(Ordering::Relaxed), before + 2);
        drop(a);
        assert_eq!(IN_FLIGHT.load(Ordering::Relaxed), before + 1);
        drop(b);
        assert_eq!(IN_FLIGHT.load(Ordering::Relaxed), before);
    }
}
