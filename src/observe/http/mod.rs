//! The process-wide HTTP endpoints (`health`, `ready`, `prometheus`), keyed by listen address.
//!
//! [`apply`] takes the complete desired set after each (re)load: endpoints whose address is
//! still wanted stay up (their routes are updated in place, so a reload never drops a probe or
//! a scrape), new ones start, the rest stop. Endpoints run on their own small runtime thread,
//! so they answer even while DNS workers are busy.

pub mod listen;
pub mod probe;
pub mod serve;
pub mod webconfig;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::serve::RouteState;
use crate::gocompat::duration;
use crate::plugin::PluginConfig;

/// A path an endpoint serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// `/health`: always 200 `OK`.
    Health,
    /// `/ready`: 200 `OK` or 503 with the plugins that are not ready.
    Ready,
    /// `/metrics`: the process-wide registry.
    Metrics,
}

/// One wanted endpoint: a listen address (`:8080`, `localhost:9153`, `[::1]:8080`) and what it
/// serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Listen address as written in the Corefile.
    pub addr: String,
    /// Paths served.
    pub routes: Vec<Route>,
    /// The health plugin's `lameduck` duration (zero if none).
    pub lameduck: Duration,
    /// A web configuration file for TLS (`prometheus { tls PATH }`).
    pub tls: Option<String>,
}

impl EndpointSpec {
    /// A `/health` endpoint.
    pub fn health(addr: &str, lameduck: Duration) -> EndpointSpec {
        EndpointSpec { addr: addr.to_string(), routes: vec![Route::Health], lameduck, tls: None }
    }

    /// A `/ready` endpoint.
    pub fn ready(addr: &str) -> EndpointSpec {
        EndpointSpec { addr: addr.to_string(), routes: vec![Route::Ready], lameduck: Duration::ZERO, tls: None }
    }

    /// A `/metrics` endpoint.
    pub fn metrics(addr: &str) -> EndpointSpec {
        EndpointSpec { addr: addr.to_string(), routes: vec![Route::Metrics], lameduck: Duration::ZERO, tls: None }
    }

    /// A `/metrics` endpoint served over TLS as set in the web configuration at `path`.
    pub fn metrics_tls(addr: &str, path: &str) -> EndpointSpec {
        EndpointSpec { tls: Some(path.to_string()), ..EndpointSpec::metrics(addr) }
    }
}

/// Aborts a spawned task when dropped.
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running endpoint. Dropping it closes the listener and stops its probe.
struct Endpoint {
    routes: Vec<Route>,
    tls: Option<String>,
    state: Arc<RouteState>,
    lameduck: Duration,
    local: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    /// Signalled by the accept task once its listener is closed.
    closed: std::sync::mpsc::Receiver<()>,
    probe: Option<TaskGuard>,
}

impl Endpoint {
    /// Stops accepting and waits (briefly) until the listening socket is closed, so the port
    /// is free when this returns.
    fn shut(mut self) {
        // Connections still open (keep-alive) get 404 from now on.
        self.state.set(&[]);
        self.probe = None;
        self.stop = None;
        let _ = self.closed.recv_timeout(Duration::from_secs(2));
    }
}

static HUB: Mutex<BTreeMap<String, Endpoint>> = Mutex::new(BTreeMap::new());

/// The runtime thread the endpoints run on.
fn runtime() -> Result<&'static Handle, String> {
    static RT: OnceLock<Result<Handle, String>> = OnceLock::new();
    RT.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("nodecache-http".to_string())
            .spawn(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => {
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(std::future::pending::<()>());
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            })
            .map_err(|e| e.to_string())?;
        rx.recv().map_err(|e| e.to_string())?
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Merges specs naming the same address (routes united, longest lameduck).
fn merge(desired: Vec<EndpointSpec>) -> BTreeMap<String, EndpointSpec> {
    let mut out: BTreeMap<String, EndpointSpec> = BTreeMap::new();
    for spec in desired {
        match out.get_mut(&spec.addr) {
            Some(e) => {
                e.routes.extend(spec.routes);
                e.lameduck = e.lameduck.max(spec.lameduck);
                if e.tls.is_none() {
                    e.tls = spec.tls;
                }
            }
            None => {
                out.insert(spec.addr.clone(), spec);
            }
        }
    }
    for spec in out.values_mut() {
        spec.routes.sort();
        spec.routes.dedup();
    }
    out
}

/// Desired endpoints per owner (the Corefile's plugins; node-cache's own metrics listener).
static GROUPS: Mutex<BTreeMap<String, Vec<EndpointSpec>>> = Mutex::new(BTreeMap::new());

/// The owner name [`apply`] uses: the endpoints of the Corefile's `health`, `ready` and
/// `prometheus` lines.
pub const COREFILE_GROUP: &str = "corefile";

/// Makes the Corefile's endpoints exactly `desired` (other owners' endpoints are untouched).
/// Endpoints that cannot start are skipped and reported in the error
/// (`listen tcp :8080: bind: address already in use`); the others are still applied.
pub fn apply(desired: Vec<EndpointSpec>) -> Result<(), String> {
    apply_group(COREFILE_GROUP, desired)
}

/// Sets the endpoints wanted by `group` (e.g. `node-cache` for `-metrics-listen-address`) and
/// reconciles the running set with the union over all groups.
pub fn apply_group(group: &str, desired: Vec<EndpointSpec>) -> Result<(), String> {
    let mut groups = GROUPS.lock();
    let own = desired.clone();
    groups.insert(group.to_string(), desired);
    let all: Vec<EndpointSpec> = groups.values().flatten().cloned().collect();
    let mut errors = Vec::new();
    for (addr, e) in reconcile(all) {
        let mine: Vec<&EndpointSpec> = own.iter().filter(|s| s.addr == addr).collect();
        if mine.is_empty() {
            continue;
        }
        if group == COREFILE_GROUP && mine.iter().any(|s| s.routes.contains(&Route::Metrics)) {
            tracing::error!(target: "plugin/prometheus", "Failed to start metrics handler: {e}");
        }
        errors.push(e);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Starts, updates and stops endpoints; returns (address, error) for those that failed.
fn reconcile(desired: Vec<EndpointSpec>) -> Vec<(String, String)> {
    let desired = merge(desired);
    let mut hub = HUB.lock();
    let removed: Vec<String> = hub.keys().filter(|a| !desired.contains_key(*a)).cloned().collect();
    for addr in removed {
        if let Some(ep) = hub.remove(&addr) {
            ep.shut();
        }
    }
    let mut errors = Vec::new();
    for (addr, spec) in desired {
        if hub.get(&addr).is_some_and(|ep| ep.tls != spec.tls) {
            if let Some(ep) = hub.remove(&addr) {
                ep.shut();
            }
        }
        if let Some(ep) = hub.get_mut(&addr) {
            if ep.routes != spec.routes {
                ep.state.set(&spec.routes);
                let wants_probe = spec.routes.contains(&Route::Health);
                if wants_probe && ep.probe.is_none() {
                    ep.probe = start_probe(&addr, ep.local).ok();
                } else if !wants_probe {
                    ep.probe = None;
                }
                ep.routes = spec.routes;
            }
            ep.lameduck = spec.lameduck;
            continue;
        }
        match start(&spec) {
            Ok(ep) => {
                hub.insert(addr, ep);
            }
            Err(e) => errors.push((addr, e)),
        }
    }
    errors
}

fn start(spec: &EndpointSpec) -> Result<Endpoint, String> {
    let rt = runtime()?;
    let std_listener = listen::bind(&spec.addr)?;
    let local = std_listener.local_addr().map_err(|e| e.to_string())?;
    let listener = {
        let _enter = rt.enter();
        tokio::net::TcpListener::from_std(std_listener).map_err(|e| format!("listen tcp {}: {e}", spec.addr))?
    };
    let acceptor = match &spec.tls {
        Some(path) => match webconfig::load(path)? {
            Some(settings) => Some(tokio_rustls::TlsAcceptor::from(webconfig::server_config(&settings)?)),
            None => None,
        },
        None => None,
    };
    let state = Arc::new(RouteState::default());
    state.set(&spec.routes);
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let (closed_tx, closed) = std::sync::mpsc::channel();
    let conn_state = state.clone();
    rt.spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => match &acceptor {
                        None => {
                            tokio::spawn(serve::serve_connection(stream, conn_state.clone()));
                        }
                        Some(acceptor) => {
                            let handshake = acceptor.accept(stream);
                            let routes = conn_state.clone();
                            tokio::spawn(async move {
                                if let Ok(Ok(tls)) = tokio::time::timeout(serve::TIMEOUT, handshake).await {
                                    serve::serve_connection(tls, routes).await;
                                }
                            });
                        }
                    },
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                _ = stop_rx.changed() => break,
            }
        }
        drop(listener);
        let _ = closed_tx.send(());
    });
    let probe = if spec.routes.contains(&Route::Health) { Some(start_probe(&spec.addr, local)?) } else { None };
    Ok(Endpoint {
        routes: spec.routes.clone(),
        tls: spec.tls.clone(),
        state,
        lameduck: spec.lameduck,
        local,
        stop: Some(stop_tx),
        closed,
        probe,
    })
}

fn start_probe(addr: &str, local: SocketAddr) -> Result<TaskGuard, String> {
    Ok(TaskGuard(runtime()?.spawn(probe::run(addr.to_string(), local))))
}

/// The bound socket address of the running endpoint for `addr` (useful with port 0).
pub fn local_addr(addr: &str) -> Option<SocketAddr> {
    HUB.lock().get(addr).map(|e| e.local)
}

/// Addresses of the running endpoints.
pub fn running() -> Vec<String> {
    HUB.lock().keys().cloned().collect()
}

/// Stops every endpoint.
pub fn stop_all() {
    GROUPS.lock().clear();
    let all = std::mem::take(&mut *HUB.lock());
    for ep in all.into_values() {
        ep.shut();
    }
}

/// The longest `lameduck` of the running health endpoints (zero if none).
pub fn lameduck_duration() -> Duration {
    HUB.lock().values().filter(|e| e.routes.contains(&Route::Health)).map(|e| e.lameduck).max().unwrap_or_default()
}

/// Final-shutdown step of the health plugin: with a lameduck duration, logs
/// `Going into lameduck mode for D` and waits D while everything keeps serving.
pub async fn lameduck() {
    let d = lameduck_duration();
    if !d.is_zero() {
        tracing::info!(target: "plugin/health", "Going into lameduck mode for {}", duration::format_std(d));
        tokio::time::sleep(d).await;
    }
}

/// SIGTERM's shutdown callbacks for the HTTP plugins: `/ready` starts answering
/// `Shutting down`, then the health lameduck wait (DNS and `/health` keep serving meanwhile).
/// Call [`stop_all`] once the DNS servers are stopped.
pub async fn final_shutdown() {
    crate::observe::readiness::set_shutting_down();
    lameduck().await;
}

/// The endpoint a `health`, `ready` or `prometheus` configuration asks for (None for other
/// plugins). Collect these over every block and pass them to [`apply`].
/// Each plugin says what it wants through [`PluginConfig::http_endpoint`].
pub fn endpoint_for(cfg: &dyn PluginConfig) -> Option<EndpointSpec> {
    cfg.http_endpoint()
}
