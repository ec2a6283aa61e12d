//! The `debug` plugin (setup only): turns off panic recovery and enables debug logging,
//! process-wide.

use std::sync::atomic::{AtomicBool, Ordering};

pub mod setup;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// True once any server block configured `debug`.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Sets the process-wide debug flag (and turns `[DEBUG]` log lines on or off).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
    crate::observe::logging::set_debug(on);
}
