//! The `debug` plugin (setup only): turns off panic recovery and enables debug logging,
//! process-wide. The flag itself lives with the logging ([`crate::observe::logging`]), where
//! the server reads it too.

pub mod setup;

/// True once any server block configured `debug`.
pub fn enabled() -> bool {
    crate::observe::logging::debug_enabled()
}

/// Sets the process-wide debug flag (`[DEBUG]` log lines, no panic recovery).
pub fn set_enabled(on: bool) {
    crate::observe::logging::set_debug(on);
}
