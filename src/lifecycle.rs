//! Process lifecycle: signals as CoreDNS handles them, the pidfile, and exit hooks.
//!
//! SIGUSR1 reloads; SIGTERM runs the shutdown callbacks (lameduck: keep serving for the
//! configured time), then drains (no new queries taken, the ones read answered), then the exit hooks (pidfile removal, node-cache teardown), then exits 0;
//! SIGINT does the same and a second SIGINT exits 2 at once; SIGQUIT runs the exit hooks and
//! exits 0 without lameduck; SIGHUP is ignored.

use std::path::PathBuf;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::reload::Trigger;

/// What to do on the way out.
#[derive(Default)]
pub struct ExitPlan {
    /// SIGTERM only, after the lameduck wait: stop taking queries and answer the ones already
    /// read (bounded). Runs on a blocking thread.
    pub drain: Option<Box<dyn FnOnce() + Send>>,
    /// Exit hooks in order (pidfile removal first, then teardown).
    pub hooks: Vec<Box<dyn FnOnce() + Send>>,
}

impl ExitPlan {
    fn run_hooks(&mut self) {
        for h in self.hooks.drain(..) {
            h();
        }
    }
}

/// Installs every signal handler now (before any reload signal could be sent to ourselves).
pub struct Signals {
    usr1: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers the handlers; must run inside a tokio runtime.
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            usr1: signal(SignalKind::user_defined1())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Serves signals until the process should exit; returns the exit status.
    pub async fn run(mut self, reload: mpsc::UnboundedSender<Trigger>, mut exit: ExitPlan) -> i32 {
        loop {
            tokio::select! {
                _ = self.usr1.recv() => {
                    tracing::info!("SIGUSR1: Reloading");
                    let _ = reload.send(Trigger::Signal);
                }
                _ = self.hup.recv() => {}
                _ = self.quit.recv() => {
                    tracing::info!("SIGQUIT: Shutting down");
                    exit.run_hooks();
                    return 0;
                }
                _ = self.term.recv() => {
                    tracing::info!("SIGTERM: Shutting down servers then terminating");
                    crate::observe::http::final_shutdown().await;
                    if let Some(drain) = exit.drain.take() {
                        let _ = tokio::task::spawn_blocking(drain).await;
                    }
                    exit.run_hooks();
                    return 0;
                }
                _ = self.int.recv() => {
                    tracing::info!("SIGINT: Shutting down");
                    exit.run_hooks();
                    tokio::select! {
                        _ = crate::observe::http::final_shutdown() => return 0,
                        _ = self.int.recv() => {
                            tracing::info!("SIGINT: Force quit");
                            return 2;
                        }
                    }
                }
            }
        }
    }
}

/// Writes `<pid>\n` to `path` (mode 0644).
pub fn write_pidfile(path: &PathBuf) -> std::io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
}

/// What [`raise_nofile_limit`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NofileRaise {
    /// The soft limit already equalled the hard limit.
    Unchanged(libc::rlim_t),
    /// The soft limit was raised from the first value to the second (the hard limit).
    Raised(libc::rlim_t, libc::rlim_t),
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as the Go runtime does at start-up
/// (since Go 1.19) for CoreDNS and node-cache. Logs the outcome at debug level; an error is
/// only reported, never fatal.
pub fn raise_nofile_limit() -> std::io::Result<NofileRaise> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the valid `rlimit` we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        let e = std::io::Error::last_os_error();
        tracing::debug!("cannot read RLIMIT_NOFILE: {e}");
        return Err(e);
    }
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    if soft >= hard {
        tracing::debug!("RLIMIT_NOFILE soft limit {soft} is already the hard limit");
        return Ok(NofileRaise::Unchanged(soft));
    }
    let raised = libc::rlimit { rlim_cur: hard, rlim_max: hard };
    // SAFETY: setrlimit only reads the valid `rlimit` we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        let e = std::io::Error::last_os_error();
        tracing::debug!("cannot raise RLIMIT_NOFILE from {soft} to {hard}: {e}");
        return Err(e);
    }
    tracing::debug!("raised RLIMIT_NOFILE soft limit from {soft} to {hard}");
    Ok(NofileRaise::Raised(soft, hard))
}
