//! A safety bound on the queries waiting for one upstream's reply.
//!
//! Every query sent to an upstream (the server's direct path or the chain's exchange) holds a
//! [`WaitSlot`] until its reply arrives or it gives up. When an upstream stops answering, the
//! slots fill up instead of memory and file descriptors: past [`MAX_WAITING`] a query fails at
//! once (SERVFAIL, counted in `nodecache_forward_waiting_rejects_total`) rather than queueing
//! behind thousands of others. CoreDNS has no such bound unless `max_concurrent` is set; the
//! difference is listed in `docs/compatibility.md`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Queries that may wait for one upstream at once. A healthy upstream answering in 1 ms
/// needs one slot per 1,000 q/s; one answering in 500 ms at 8,000 q/s needs 4,000.
pub const MAX_WAITING: usize = 4096;

/// The bound for one upstream in this process: [`MAX_WAITING`], or a sixteenth of the
/// open-file limit when that is lower, and never below 64. A waiting UDP query holds a socket,
/// and the direct path keeps up to as many idle ones again for a while, so one upstream uses
/// at most an eighth of the descriptors; other upstreams, TCP clients and the HTTP endpoints
/// keep the rest.
pub fn default_cap() -> usize {
    // SAFETY: getrlimit only writes the struct it is given.
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    cap_for_fd_limit(soft)
}

fn cap_for_fd_limit(soft: usize) -> usize {
    (soft / 16).clamp(64, MAX_WAITING)
}

/// The waiting-query counter of one upstream.
#[derive(Debug)]
pub struct WaitLimit {
    count: AtomicUsize,
    cap: usize,
}

/// One waiting query's place; released when dropped.
#[derive(Debug)]
pub struct WaitSlot(Arc<WaitLimit>);

impl WaitLimit {
    /// A limit of `cap` waiting queries.
    pub fn new(cap: usize) -> Arc<WaitLimit> {
        Arc::new(WaitLimit { count: AtomicUsize::new(0), cap: cap.max(1) })
    }

    /// A slot, or None when `cap` queries are already waiting.
    pub fn try_acquire(self: &Arc<Self>) -> Option<WaitSlot> {
        let taken = self.count.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| (n < self.cap).then_some(n + 1));
        taken.ok()?;
        crate::memory::burst_work_started();
        Some(WaitSlot(self.clone()))
    }

    /// The most queries that may wait at once.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Queries waiting now.
    pub fn waiting(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        crate::memory::burst_work_ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_follows_the_open_file_limit() {
        assert_eq!(cap_for_fd_limit(1 << 20), MAX_WAITING);
        assert_eq!(cap_for_fd_limit(4096), 256);
        assert_eq!(cap_for_fd_limit(100), 64);
    }

    #[test]
    fn slots_are_bounded_and_released_on_drop() {
        let limit = WaitLimit::new(2);
        let a = limit.try_acquire().expect("first");
        let _b = limit.try_acquire().expect("second");
        assert!(limit.try_acquire().is_none(), "third is over the cap");
        assert_eq!(limit.waiting(), 2);
        drop(a);
        assert_eq!(limit.waiting(), 1);
        assert!(limit.try_acquire().is_some(), "a released slot can be taken again");
    }
}
