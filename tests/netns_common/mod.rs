//! Shared by the tests that run inside a network namespace they create themselves.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

/// Runs `f` on a thread that joined the network namespace at `path` (`/run/netns/NAME`),
/// verified before `f` runs; other threads keep their namespace.
pub fn run_in<T: Send>(path: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(path).expect("open netns");
            // SAFETY: a valid namespace fd; only this thread's namespace changes.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns failed");
            let want = std::fs::metadata(path).expect("stat netns").ino();
            let have = std::fs::metadata("/proc/thread-self/ns/net").expect("stat own netns").ino();
            assert_eq!(have, want, "thread is not in the test namespace");
            f()
        })
        .join()
        .expect("netns thread panicked")
    })
}
