//! What `/ready` reports: the readiness checks of the plugins in blocks that use `ready`, and
//! the shutting-down state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// A plugin's readiness probe (its `Plugin::ready`).
pub type ReadyFn = Arc<dyn Fn() -> bool + Send + Sync>;

struct Checks {
    /// (plugin name, probe); a probe is dropped once it passed unless `keep` is set.
    list: Vec<(String, Option<ReadyFn>)>,
    keep: bool,
}

static CHECKS: Mutex<Checks> = Mutex::new(Checks { list: Vec::new(), keep: false });
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Replaces the readiness checks (one per plugin name; a later check for the same name wins,
/// as CoreDNS keys them by name). With `continuously` false (`monitor until-ready`, the
/// default) a plugin that reported ready once is not asked again.
pub fn set_ready_checks(checks: Vec<(String, ReadyFn)>, continuously: bool) {
    let mut list: Vec<(String, Option<ReadyFn>)> = Vec::with_capacity(checks.len());
    for (name, f) in checks {
        list.retain(|(n, _)| *n != name);
        list.push((name, Some(f)));
    }
    let mut c = CHECKS.lock();
    c.list = list;
    c.keep = continuously;
}

/// `Ok(())` when every check passes, else the sorted, comma-joined names of those that fail.
pub fn check() -> Result<(), String> {
    let mut c = CHECKS.lock();
    let keep = c.keep;
    let mut failing = Vec::new();
    for (name, slot) in c.list.iter_mut() {
        let Some(f) = slot else { continue };
        if f() {
            if !keep {
                *slot = None;
            }
        } else {
            failing.push(name.clone());
        }
    }
    if failing.is_empty() {
        return Ok(());
    }
    failing.sort();
    Err(failing.join(","))
}

/// Marks the process as shutting down: `/ready` answers 503 `Shutting down` from now on.
pub fn set_shutting_down() {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
}

/// Undoes [`set_shutting_down`] (a process that keeps running, e.g. tests).
pub fn clear_shutting_down() {
    SHUTTING_DOWN.store(false, Ordering::SeqCst);
}

/// Whether [`set_shutting_down`] was called.
pub fn is_shutting_down() -> bool {
    SHUTTING_DOWN.load(Ordering::SeqCst)
}
