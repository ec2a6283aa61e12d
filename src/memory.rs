//! Hands memory back to the system after a burst.
//!
//! Queries waiting for a dead or slow upstream allocate on many threads at once; when they
//! are gone, the C allocator keeps the freed pages in its per-thread arenas, so the resident
//! set stays at the burst's peak. The code that holds such per-query state reports it here
//! ([`burst_work_started`], [`burst_work_ended`]); a housekeeping thread notices when a large
//! amount of it has drained and asks the allocator to release its free pages (`malloc_trim`,
//! glibc only; musl's allocator unmaps freed groups by itself).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

/// Units of per-query state alive now.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
/// The most alive at once since the last trim.
static HIGH: AtomicUsize = AtomicUsize::new(0);
/// A peak at least this large is worth a trim once it has drained.
const BURST: usize = 256;
/// How often the housekeeping thread looks.
const EVERY: Duration = Duration::from_secs(1);
static START: Once = Once::new();

/// Records one unit of per-query state (a query waiting for an upstream) coming alive.
pub fn burst_work_started() {
    let now = CURRENT.fetch_add(1, Ordering::Relaxed) + 1;
    if now >= BURST && now > HIGH.load(Ordering::Relaxed) {
        HIGH.fetch_max(now, Ordering::Relaxed);
        START.call_once(start_trimmer);
    }
}

/// Records one unit of per-query state going away.
pub fn burst_work_ended() {
    CURRENT.fetch_sub(1, Ordering::Relaxed);
}

/// Units alive now (for tests and debugging).
pub fn current() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Whether a peak of `high` has drained enough, with `now` alive, to trim.
fn drained(high: usize, now: usize) -> bool {
    high >= BURST && now <= high / 8
}

fn start_trimmer() {
    let spawned = std::thread::Builder::new().name("mem-trim".to_string()).spawn(|| loop {
        std::thread::sleep(EVERY);
        let (high, now) = (HIGH.load(Ordering::Relaxed), CURRENT.load(Ordering::Relaxed));
        if drained(high, now) {
            HIGH.store(now, Ordering::Relaxed);
            release_free_pages();
        }
    });
    if let Err(e) = spawned {
        tracing::debug!("memory trimmer not started: {e}");
    }
}

/// Asks the allocator to return free pages to the system.
pub fn release_free_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_large_drained_peak_is_trimmed() {
        assert!(!drained(10, 0), "a small peak is not worth a trim");
        assert!(!drained(4000, 1000), "still busy");
        assert!(drained(4000, 100));
    }
}
