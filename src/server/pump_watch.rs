//! A UDP listener thread's wait while misses it sent upstream directly are out: one epoll set
//! holding the listener socket and the reply sets of the direct paths the thread used, so the
//! thread that read a query also completes its miss when the reply arrives, with no hand-over
//! to a second thread per reply (see [`crate::plugin::fast::ReplyPump`]). With nothing out
//! the listener blocks in `recvmmsg` as before, so cache hits pay no extra system call.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::plugin::fast::{forget_offered_pump, take_offered_pumps, ReplyPump};

/// Token of the listener socket in the set.
const CLIENT: u64 = 0;
/// Token of every pump's descriptor in the set (all pumps are pumped on any of them).
const PUMPS: u64 = 1;
/// Events read per wait.
const EVENTS: usize = 8;

/// The listener thread's epoll set and the pumps in it.
pub struct PumpWatch {
    epoll: OwnedFd,
    pumps: Vec<Arc<dyn ReplyPump>>,
}

impl PumpWatch {
    /// A set holding the listener socket `client`.
    pub fn new(client: RawFd) -> io::Result<PumpWatch> {
        // SAFETY: plain system call; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor owned by nothing else.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        add(&epoll, client, CLIENT)?;
        Ok(PumpWatch { epoll, pumps: Vec::new() })
    }

    /// Takes the pumps this thread was offered since the last call, and lets go of the ones
    /// whose path a reload dropped.
    pub fn refresh(&mut self) {
        for pump in take_offered_pumps() {
            if add(&self.epoll, pump.ready_fd(), PUMPS).is_ok() {
                pump.watch(true);
                self.pumps.push(pump);
            } else {
                forget_offered_pump(pump.key());
            }
        }
        if self.pumps.iter().any(|p| !p.alive()) {
            let (alive, dead): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pumps).into_iter().partition(|p| p.alive());
            for pump in dead {
                self.release(&pump);
            }
            self.pumps = alive;
        }
    }

    /// Whether any pump has queries out.
    pub fn waiting(&self) -> bool {
        self.pumps.iter().any(|p| p.waiting())
    }

    /// Waits up to `timeout_ms` for a query or a reply, completes the replies that arrived,
    /// and says whether the listener socket has something to read.
    pub fn wait(&self, timeout_ms: i32) -> bool {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        // SAFETY: `events` is a live array of EVENTS entries.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), EVENTS as i32, timeout_ms) };
        let ready = &events[..n.max(0) as usize];
        if ready.iter().any(|e| e.u64 == PUMPS) {
            for pump in &self.pumps {
                pump.pump();
            }
        }
        ready.iter().any(|e| e.u64 == CLIENT)
    }

    fn release(&self, pump: &Arc<dyn ReplyPump>) {
        // SAFETY: both descriptors are open (the pump is alive as long as we hold it).
        unsafe {
            libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, pump.ready_fd(), std::ptr::null_mut());
        }
        pump.watch(false);
        forget_offered_pump(pump.key());
    }
}

impl Drop for PumpWatch {
    fn drop(&mut self) {
        for pump in std::mem::take(&mut self.pumps) {
            self.release(&pump);
        }
    }
}

/// Adds `fd` to `epoll` for reading under `token`.
fn add(epoll: &OwnedFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
    // SAFETY: both descriptors are open; `event` is a live struct.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
