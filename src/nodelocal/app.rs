//! node-cache's application glue (`CacheApp`): the upstream IP from the environment, each
//! Corefile write (with the optional SIGUSR1 reload), the two ConfigMap pollers, and the
//! networking lifecycle, in node-cache's startup order.
//!
//! Typical wiring in `src/bin/node-cache.rs` (blocking calls; run them off the async
//! runtime or before it starts):
//! ```text
//! let app = Arc::new(CacheApp::new(flags));          // logs the upstream WARNING if any
//! app.init(metrics_listener_started);                // register metric, write, pollers, interface
//! let interval = flags.sync_interval()?;             // Err: Go panics in NewTicker
//! app.spawn_periodic(interval);                      // pidfile gating, then every interval
//! ... on SIGTERM/SIGINT/SIGQUIT, unless -skipteardown: app.teardown();
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::flags::NodeCacheFlags;
use super::kubedns::{DirSync, KubeDnsConfig, Poll};
use super::metrics;
use super::setup::NetworkSetup;
use super::template::{self, TemplateError, TemplateParams};

/// How often the ConfigMap directories are polled.
pub const CONFIG_SYNC_PERIOD: Duration = Duration::from_secs(10);

/// node-cache's application state.
pub struct CacheApp {
    flags: NodeCacheFlags,
    params: TemplateParams,
    setup: Arc<NetworkSetup>,
    kubedns: Mutex<KubeDnsConfig>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// Set by the directory watcher: poll now instead of at the end of the period.
    wake: Arc<AtomicBool>,
}

/// `path.Dir` of the template path: the directory polled for template changes.
pub fn template_dir(base_corefile: &str) -> PathBuf {
    match Path::new(base_corefile).parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ if base_corefile.starts_with('/') => PathBuf::from("/"),
        _ => PathBuf::from("."),
    }
}

impl CacheApp {
    /// Builds the app, reading the upstream ClusterIP from the process environment (a value
    /// that is not an IP logs node-cache's WARNING and renders as `<nil>`). Building the
    /// networking manager runs `iptables --version` when `-setupiptables` is on.
    pub fn new(flags: NodeCacheFlags) -> Self {
        let (ip, warning) = flags.upstream_ip_from_env();
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        let setup = NetworkSetup::from_flags(&flags);
        Self::with_parts(flags, ip, setup)
    }

    /// Builds the app from explicit parts (tests, or a custom networking manager).
    pub fn with_parts(flags: NodeCacheFlags, cluster_dns_ip: Option<IpAddr>, setup: NetworkSetup) -> Self {
        let params = TemplateParams {
            local_ip_str: flags.local_ip_str.clone(),
            dns_port: flags.dns_port.clone(),
            cluster_dns_ip,
            prometheus_listen_address: flags.prometheus_listen_address.clone(),
        };
        CacheApp {
            flags,
            params,
            setup: Arc::new(setup),
            kubedns: Mutex::new(KubeDnsConfig::default()),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            wake: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flags the app runs with.
    pub fn flags(&self) -> &NodeCacheFlags {
        &self.flags
    }

    /// The networking manager.
    pub fn network(&self) -> &Arc<NetworkSetup> {
        &self.setup
    }

    /// The last kube-dns configuration applied.
    pub fn kubedns_config(&self) -> KubeDnsConfig {
        self.kubedns.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// One Corefile write from `cfg` (`updateCorefile`), then, with `-reloadwithsignal`,
    /// SIGUSR1 to this process (install the handler before calling this).
    pub fn update_corefile(&self, cfg: &KubeDnsConfig) -> Result<String, TemplateError> {
        let text = template::update_corefile(
            Path::new(&self.flags.base_corefile),
            Path::new(&self.flags.corefile),
            cfg,
            &self.params,
        )?;
        if self.flags.reload_with_signal {
            let pid = std::process::id();
            tracing::info!("Sending reload signal to PID {pid}");
            // SAFETY: signalling our own process; the handler is installed by the caller.
            if unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) } != 0 {
                tracing::error!("Failed to trigger CoreDNS reload: {}", std::io::Error::last_os_error());
            }
        }
        Ok(text)
    }

    /// node-cache's `Init` after the metrics listener: registers the setup-error metric when
    /// `metrics_started`, writes the Corefile with an empty kube-dns config, starts the
    /// ConfigMap pollers (whose first sync may write again), and sets up the interface only.
    pub fn init(self: &Arc<Self>, metrics_started: bool) {
        self.init_with_period(metrics_started, CONFIG_SYNC_PERIOD);
    }

    /// [`CacheApp::init`] with another ConfigMap polling period.
    pub fn init_with_period(self: &Arc<Self>, metrics_started: bool, period: Duration) {
        if metrics_started {
            metrics::register_setup_error_metric();
        }
        let _ = self.update_corefile(&KubeDnsConfig::default());
        let _ = self.start_config_sync(period);
        self.setup.init_networking();
    }

    /// node-cache's `initDNSConfigSync`: a startup sync of the kube-dns directory (a success
    /// writes the Corefile) and of the template's directory; each one that succeeded is then
    /// polled every `period` on one background thread. A failed startup sync logs
    /// `Failed to sync …` and that directory is never polled. The polled directories are also
    /// watched: a change there polls at once (after a short debounce), so a template or
    /// kube-dns ConfigMap update rewrites the Corefile within about a second.
    pub fn start_config_sync(self: &Arc<Self>, period: Duration) -> std::io::Result<std::thread::JoinHandle<()>> {
        let mut kube_sync = None;
        match self.flags.kubedns_cm_dir() {
            Some(dir) => {
                let mut s = DirSync::new(&dir);
                match s.once() {
                    Ok(cfg) => {
                        let _ = self.update_corefile(&cfg);
                        if let Ok(mut k) = self.kubedns.lock() {
                            *k = cfg;
                        }
                        kube_sync = Some(s);
                    }
                    Err(e) => {
                        tracing::error!("Failed to sync kube-dns config directory {}, err: {e}", dir.display())
                    }
                }
            }
            None => tracing::info!("Skipping kube-dns configmap sync as no directory was specified"),
        }
        let tdir = template_dir(&self.flags.base_corefile);
        let mut tpl_sync = DirSync::new(&tdir);
        let tpl_sync = match tpl_sync.once() {
            Ok(_) => Some(tpl_sync),
            Err(e) => {
                tracing::error!("Failed to sync node-local-dns config directory {}, err: {e}", tdir.display());
                None
            }
        };
        let dirs: Vec<PathBuf> = kube_sync.iter().chain(tpl_sync.iter()).map(|s| s.dir().to_path_buf()).collect();
        let watcher = if dirs.is_empty() {
            None
        } else {
            let (wake, stop) = (self.wake.clone(), self.stop.clone());
            crate::reload::watch::watch_dirs_with(&dirs, move || {
                wake.store(true, Ordering::SeqCst);
                let _guard = stop.0.lock();
                stop.1.notify_all();
            })
            .map_err(|e| tracing::warn!("cannot watch the ConfigMap directories: {e}"))
            .ok()
        };
        let me = Arc::clone(self);
        std::thread::Builder::new().name("nodecache-configsync".into()).spawn(move || {
            let _watcher = watcher;
            me.poll_loop(kube_sync, tpl_sync, period)
        })
    }

    fn poll_loop(&self, mut kube: Option<DirSync>, mut tpl: Option<DirSync>, period: Duration) {
        loop {
            if let Some(s) = kube.as_mut() {
                if let Poll::Changed(cfg) = s.poll() {
                    let _ = self.update_corefile(&cfg);
                    if let Ok(mut k) = self.kubedns.lock() {
                        *k = cfg;
                    }
                }
            }
            if let Some(s) = tpl.as_mut() {
                if let Poll::Changed(_) = s.poll() {
                    let _ = self.update_corefile(&self.kubedns_config());
                }
            }
            if self.wait(period) {
                return;
            }
        }
    }

    /// Waits `d`, or less when the watcher wakes us (then a short debounce so a burst of
    /// renames is seen as one change). Returns true when stopped.
    fn wait(&self, d: Duration) -> bool {
        let mut deadline = Instant::now() + d;
        let mut woken = false;
        let (lock, cv) = &*self.stop;
        let Ok(mut stopped) = lock.lock() else { return true };
        loop {
            if *stopped {
                return true;
            }
            if !woken && self.wake.swap(false, Ordering::SeqCst) {
                woken = true;
                deadline = deadline.min(Instant::now() + crate::reload::watch::DEBOUNCE);
            }
            let now = Instant::now();
            if now >= deadline {
                if woken {
                    // Events of the burst that arrived while debouncing are covered by this poll.
                    self.wake.store(false, Ordering::SeqCst);
                }
                return false;
            }
            match cv.wait_timeout(stopped, deadline - now) {
                Ok((g, _)) => stopped = g,
                Err(_) => return true,
            }
        }
    }

    /// Stops the ConfigMap pollers.
    pub fn stop_config_sync(&self) {
        let (lock, cv) = &*self.stop;
        if let Ok(mut g) = lock.lock() {
            *g = true;
        }
        cv.notify_all();
    }

    /// Starts the periodic networking loop (see [`NetworkSetup::run_periodic`]).
    pub fn spawn_periodic(&self, interval: Duration) -> std::io::Result<std::thread::JoinHandle<()>> {
        self.setup.spawn_periodic(interval)
    }

    /// node-cache's `TeardownNetworking` (skip it with `-skipteardown`).
    pub fn teardown(&self) -> Result<(), String> {
        self.setup.teardown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_dir_is_path_dir() {
        assert_eq!(template_dir("/etc/coredns/Corefile.base"), PathBuf::from("/etc/coredns"));
        assert_eq!(template_dir("Corefile.base"), PathBuf::from("."));
        assert_eq!(template_dir("/Corefile.base"), PathBuf::from("/"));
        assert_eq!(template_dir(""), PathBuf::from("."));
    }
}
