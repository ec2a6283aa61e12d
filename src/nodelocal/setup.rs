//! node-cache's networking lifecycle: ensure the iptables rules and the dummy interface
//! (once when the pidfile appears, then every `-syncinterval`), and tear them down on exit.
//! Errors are logged and counted in `coredns_nodecache_setup_errors_total`, and never stop
//! the process: unlike node-cache, a failed pass is retried with backoff (0.5 s doubling to
//! 30 s, see [`super::backoff`]) on the periodic thread until it succeeds, besides the
//! regular `-syncinterval` passes.
//!
//! All methods block (they exec iptables); call them from a plain thread or
//! `spawn_blocking`.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::flags::NodeCacheFlags;
use super::iptables::{node_cache_rules, Iptables, IptablesError, Rule};
use super::metrics::{self, SetupErrorKind};
use super::netif::NetifManager;

/// How often [`NetworkSetup::init_networking`] retries a failed interface pass.
pub const STARTUP_RETRIES: usize = 3;

/// Safety cap for the teardown delete/check loop of one rule (node-cache has none).
const TEARDOWN_MAX_ROUNDS: usize = 1000;

/// What the setup manages, derived from the flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupParams {
    /// `-setupinterface`.
    pub setup_interface: bool,
    /// `-setupiptables`.
    pub setup_iptables: bool,
    /// `-interfacename`.
    pub interface_name: String,
    /// `-pidfile` (empty: none).
    pub pidfile: String,
}

#[derive(Default)]
struct StopState {
    stopped: bool,
}

/// The networking manager (node-cache's `CacheApp` networking half).
pub struct NetworkSetup {
    params: SetupParams,
    rules: Vec<Rule>,
    iptables: Option<Iptables>,
    netif: Option<NetifManager>,
    stop: Arc<(Mutex<StopState>, Condvar)>,
    /// Held by each periodic pass and by teardown, so a pass never runs after teardown.
    busy: Mutex<()>,
    /// `Some(with_iptables)` while a failed pass awaits its retry (`true`: a full pass).
    retry: Mutex<Option<bool>>,
}

fn count_iptables(e: &IptablesError) {
    metrics::inc(e.kind());
}

impl NetworkSetup {
    /// Builds the manager as node-cache's `Init` does: the interface manager only with
    /// `-setupinterface`, the rule list and runner (which runs `iptables --version`) only
    /// with `-setupiptables`.
    pub fn from_flags(flags: &NodeCacheFlags) -> Self {
        let params = SetupParams {
            setup_interface: flags.setup_interface,
            setup_iptables: flags.setup_iptables,
            interface_name: flags.interface_name.clone(),
            pidfile: flags.pidfile.clone(),
        };
        let (rules, iptables) = if flags.setup_iptables {
            (
                node_cache_rules(&flags.local_ip_str, &flags.dns_port, &flags.health_port),
                Some(Iptables::new(flags.is_ipv6())),
            )
        } else {
            (Vec::new(), None)
        };
        let netif = flags.setup_interface.then(|| NetifManager::new(&flags.local_ips));
        Self::with_parts(params, rules, iptables, netif)
    }

    /// Builds the manager from explicit parts (e.g. another iptables command).
    pub fn with_parts(
        params: SetupParams,
        rules: Vec<Rule>,
        iptables: Option<Iptables>,
        netif: Option<NetifManager>,
    ) -> Self {
        NetworkSetup {
            params,
            rules,
            iptables,
            netif,
            stop: Arc::new((Mutex::new(StopState::default()), Condvar::new())),
            busy: Mutex::new(()),
            retry: Mutex::new(None),
        }
    }

    /// The rules managed (empty without `-setupiptables`).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// `Init`'s interface-only pass. The listeners bind the local IPs right after, so a
    /// failure is retried here a few times ([`STARTUP_RETRIES`], backoff delays: 3.5 s in
    /// all) before giving up to [`NetworkSetup::run_periodic`]'s retries; DNS is not served
    /// yet, so nothing waits on this but startup.
    pub fn init_networking(&self) -> bool {
        let mut backoff = Backoff::default();
        for _ in 0..STARTUP_RETRIES {
            if self.setup_networking(false) {
                return true;
            }
            let delay = backoff.next_delay();
            tracing::warn!("Interface setup failed; retrying in {delay:?}");
            std::thread::sleep(delay);
        }
        self.setup_networking(false)
    }

    /// One setup pass: the rules first (when `with_iptables` and enabled), then the
    /// interface. node-cache's `Init` passes `false` (interface only); the periodic loop
    /// passes `true`. Returns true when every step succeeded; a failure is remembered so
    /// [`NetworkSetup::run_periodic`] retries it with backoff.
    pub fn setup_networking(&self, with_iptables: bool) -> bool {
        let mut ok = true;
        if with_iptables && self.params.setup_iptables {
            if let Some(ipt) = &self.iptables {
                for rule in &self.rules {
                    match ipt.ensure_rule(rule) {
                        Ok(true) => tracing::debug!("iptables rule {rule} for nodelocaldns already exists"),
                        Ok(false) => tracing::info!("Added back nodelocaldns rule - {rule}"),
                        Err(e) => {
                            tracing::error!("Error checking/adding iptables rule {rule}, error - {e}");
                            count_iptables(&e);
                            ok = false;
                        }
                    }
                }
            }
        }
        if self.params.setup_interface {
            if let Some(netif) = &self.netif {
                let name = &self.params.interface_name;
                let (exists, res) = netif.ensure_dummy_device(name);
                if !exists {
                    if let Err(e) = &res {
                        tracing::error!("Failed to add non-existent interface {name}: {e}");
                        metrics::inc(SetupErrorKind::InterfaceAdd);
                    }
                    tracing::info!("Added interface - {name}");
                }
                if let Err(e) = &res {
                    tracing::error!("Error checking dummy device {name} - {e}");
                    metrics::inc(SetupErrorKind::InterfaceCheck);
                    ok = false;
                }
            }
        }
        self.note_outcome(with_iptables, ok);
        ok
    }

    /// Records a pass's outcome: a failure leaves a retry pending (full if any failed pass
    /// was full); a success clears a pending retry that this pass covers.
    fn note_outcome(&self, with_iptables: bool, ok: bool) {
        if let Ok(mut retry) = self.retry.lock() {
            *retry = next_retry(*retry, with_iptables, ok);
        }
    }

    /// The pass a retry must repeat (`Some(with_iptables)`), if the last one failed.
    pub fn pending_retry(&self) -> Option<bool> {
        self.retry.lock().map(|r| *r).unwrap_or(None)
    }

    /// A pass from the periodic loop; skipped once stopped (teardown may have run).
    fn periodic_pass(&self, with_iptables: bool) {
        let _busy = self.busy.lock();
        if !self.stopped() {
            self.setup_networking(with_iptables);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.0.lock().map(|s| s.stopped).unwrap_or(true)
    }

    /// Sleeps until `deadline` or a stop request; true when stopped.
    fn wait_until(&self, deadline: Instant) -> bool {
        let (lock, cv) = &*self.stop;
        let Ok(mut guard) = lock.lock() else { return true };
        loop {
            if guard.stopped {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match cv.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => guard = g,
                Err(_) => return true,
            }
        }
    }

    /// node-cache's `runPeriodic`, blocking: with a pidfile, poll each second (logging
    /// `waiting for coredns pidfile '<p>'`) until it exists as a file, then run a full setup;
    /// then a full setup every `interval` until [`NetworkSetup::stop`]. In between, a failed
    /// pass (including `Init`'s) is retried after a [`Backoff`] delay until one succeeds.
    pub fn run_periodic(&self, interval: Duration) {
        let mut backoff = Backoff::default();
        let mut retry_at = self.pending_retry().map(|_| Instant::now() + backoff.next_delay());
        let mut waiting_pidfile = !self.params.pidfile.is_empty();
        let mut next_poll = Instant::now();
        let mut next_tick = Instant::now() + interval;
        loop {
            let mut due = if waiting_pidfile { next_poll } else { next_tick };
            if let Some(r) = retry_at {
                due = due.min(r);
            }
            if self.wait_until(due) {
                if !waiting_pidfile {
                    tracing::warn!("Exiting iptables/interface check goroutine");
                }
                return;
            }
            let now = Instant::now();
            if waiting_pidfile && now >= next_poll {
                if !is_file(Path::new(&self.params.pidfile)) {
                    tracing::info!("waiting for coredns pidfile '{}'", self.params.pidfile);
                    next_poll = now + Duration::from_secs(1);
                    continue;
                }
                waiting_pidfile = false;
                self.periodic_pass(true);
                next_tick = Instant::now() + interval;
            } else if !waiting_pidfile && now >= next_tick {
                self.periodic_pass(true);
                // A ticker drops ticks that were missed while a setup ran long.
                let now = Instant::now();
                next_tick += interval;
                while next_tick <= now {
                    next_tick += interval;
                }
            } else if retry_at.is_some_and(|r| now >= r) {
                if let Some(full) = self.pending_retry() {
                    self.periodic_pass(full);
                }
            } else {
                continue;
            }
            retry_at = if self.pending_retry().is_some() {
                let delay = backoff.next_delay();
                tracing::warn!("Network setup failed; retrying in {delay:?}");
                Some(Instant::now() + delay)
            } else {
                backoff.reset();
                None
            };
        }
    }

    /// Starts [`NetworkSetup::run_periodic`] on its own thread.
    pub fn spawn_periodic(self: &Arc<Self>, interval: Duration) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = Arc::clone(self);
        std::thread::Builder::new().name("nodecache-setup".into()).spawn(move || me.run_periodic(interval))
    }

    /// Stops the periodic loop (it exits at its next wake-up, at once if sleeping).
    pub fn stop(&self) {
        let (lock, cv) = &*self.stop;
        if let Ok(mut g) = lock.lock() {
            g.stopped = true;
        }
        cv.notify_all();
    }

    /// node-cache's `TeardownNetworking`: logs `Tearing down`, stops the loop, removes every
    /// rule (delete, then check — which re-inserts — until absent, then one last delete, so
    /// duplicates go too), then deletes the interface. Returns the last error.
    pub fn teardown(&self) -> Result<(), String> {
        tracing::info!("Tearing down");
        self.stop();
        // Unlike node-cache, wait for an in-flight periodic pass so it cannot re-add rules.
        let _busy = self.busy.lock();
        let mut last: Result<(), String> = Ok(());
        if self.params.setup_iptables {
            if let Some(ipt) = &self.iptables {
                for rule in &self.rules {
                    let mut exists = true;
                    let mut rounds = 0;
                    while exists && rounds < TEARDOWN_MAX_ROUNDS {
                        rounds += 1;
                        if let Err(e) = ipt.delete_rule(rule) {
                            tracing::error!("Failed deleting iptables rule {rule}, error - {e}");
                            count_iptables(&e);
                        }
                        exists = match ipt.ensure_rule(rule) {
                            Ok(v) => v,
                            Err(e) => {
                                tracing::error!(
                                    "Failed checking iptables rule after deletion, rule - {rule}, error - {e}"
                                );
                                count_iptables(&e);
                                false
                            }
                        };
                    }
                    last = ipt.delete_rule(rule).map_err(|e| e.to_string());
                }
            }
        }
        if self.params.setup_interface {
            if let Some(netif) = &self.netif {
                last = netif.remove_dummy_device(&self.params.interface_name).map_err(|e| e.to_string());
            }
        }
        last
    }

    /// True once [`NetworkSetup::stop`] or [`NetworkSetup::teardown`] ran.
    pub fn is_stopped(&self) -> bool {
        self.stopped()
    }
}

/// The pending retry after a pass: `prev` is the one pending before (`Some(full)`), the pass
/// was full when `with_iptables`, and succeeded when `ok`.
fn next_retry(prev: Option<bool>, with_iptables: bool, ok: bool) -> Option<bool> {
    match (prev, ok) {
        (prev, false) => Some(prev.unwrap_or(false) || with_iptables),
        // An interface-only success does not cover a failed full pass.
        (Some(true), true) if !with_iptables => Some(true),
        (_, true) => None,
    }
}

fn is_file(p: &Path) -> bool {
    std::fs::metadata(p).map(|m| !m.is_dir()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_bookkeeping() {
        assert_eq!(next_retry(None, false, true), None);
        assert_eq!(next_retry(None, false, false), Some(false));
        assert_eq!(next_retry(None, true, false), Some(true));
        assert_eq!(next_retry(Some(false), true, false), Some(true));
        assert_eq!(next_retry(Some(true), false, false), Some(true));
        assert_eq!(next_retry(Some(true), false, true), Some(true));
        assert_eq!(next_retry(Some(true), true, true), None);
        assert_eq!(next_retry(Some(false), false, true), None);
    }
}
