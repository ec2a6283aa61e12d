//! node-cache's networking lifecycle: ensure the iptables rules and the dummy interface
//! (once when the pidfile appears, then every `-syncinterval`), and tear them down on exit.
//! Errors are logged and counted in `coredns_nodecache_setup_errors_total`.
//!
//! All methods block (they exec iptables); call them from a plain thread or
//! `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::flags::NodeCacheFlags;
use super::iptables::{node_cache_rules, Iptables, IptablesError, Rule};
use super::metrics::{self, SetupErrorKind};
use super::netif::NetifManager;

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
        }
    }

    /// The rules managed (empty without `-setupiptables`).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// One setup pass: the rules first (when `with_iptables` and enabled), then the
    /// interface. node-cache's `Init` passes `false` (interface only); the periodic loop
    /// passes `true`.
    pub fn setup_networking(&self, with_iptables: bool) {
        if with_iptables && self.params.setup_iptables {
            if let Some(ipt) = &self.iptables {
                for rule in &self.rules {
                    match ipt.ensure_rule(rule) {
                        Ok(true) => tracing::debug!("iptables rule {rule} for nodelocaldns already exists"),
                        Ok(false) => tracing::info!("Added back nodelocaldns rule - {rule}"),
                        Err(e) => {
                            tracing::error!("Error checking/adding iptables rule {rule}, error - {e}");
                            count_iptables(&e);
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
                }
            }
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
    /// then a full setup every `interval` until [`NetworkSetup::stop`].
    pub fn run_periodic(&self, interval: Duration) {
        if !self.params.pidfile.is_empty() {
            let pidfile = PathBuf::from(&self.params.pidfile);
            loop {
                if is_file(&pidfile) {
                    break;
                }
                tracing::info!("waiting for coredns pidfile '{}'", self.params.pidfile);
                if self.wait_until(Instant::now() + Duration::from_secs(1)) {
                    return;
                }
            }
            self.setup_networking(true);
        }
        let mut next = Instant::now() + interval;
        loop {
            if self.wait_until(next) {
                tracing::warn!("Exiting iptables/interface check goroutine");
                return;
            }
            self.setup_networking(true);
            // A ticker drops ticks that were missed while a setup ran long.
            let now = Instant::now();
            next += interval;
            while next <= now {
                next += interval;
            }
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

fn is_file(p: &Path) -> bool {
    std::fs::metadata(p).map(|m| !m.is_dir()).unwrap_or(false)
}
