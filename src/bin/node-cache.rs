//! `node-cache`: the drop-in entrypoint for the `node-local-dns` DaemonSet. node-cache's flags
//! exactly; the Corefile is generated from `-basecorefile` and the kube-dns ConfigMap, written
//! to `-conf`, and served; the dummy interface and iptables rules are set up and torn down.

use std::path::PathBuf;
use std::sync::Arc;

use nodecache::cli::{self, ServeOptions};
use nodecache::engine::Source;
use nodecache::nodelocal::app::CacheApp;
use nodecache::nodelocal::flags;
use nodecache::observe::{self, http};

fn main() {
    nodecache::residency::fault_single_pages();
    let (flags, rest) = flags::parse_or_exit();
    observe::logging::init(flags.quiet);
    // Never fatal: the outcome is logged at debug level.
    let _ = nodecache::lifecycle::raise_nofile_limit();
    tracing::info!("Starting node-cache image: {}", env!("CARGO_PKG_VERSION"));
    for line in flags.startup_messages() {
        tracing::info!("{line}");
    }
    if flags.version {
        println!("{}", cli::version_line());
        return;
    }
    if flags.plugins {
        print!("{}", cli::plugins_listing());
        return;
    }
    if let Some(msg) = flags::extra_args_message(&rest) {
        observe::logging::fatal(msg);
    }
    let port: u16 = match flags.dns_port.parse() {
        Ok(p) => p,
        Err(_) => observe::logging::fatal(format!("invalid port: {}", flags.dns_port)),
    };
    if flags.reload_with_signal {
        // Our own SIGUSR1 after a Corefile write must not kill us before the real handler is
        // installed; node-cache loses those early signals too.
        // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
        unsafe {
            libc::signal(libc::SIGUSR1, libc::SIG_IGN);
        }
    }
    let interval = match flags.sync_interval() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("panic: {e}");
            std::process::exit(2);
        }
    };
    let metrics_started =
        match http::apply_group("node-cache", vec![http::EndpointSpec::metrics(&flags.metrics_listen_address)]) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("Failed to start metrics handler: {e}");
                false
            }
        };
    let skip_teardown = flags.skip_teardown;
    let conf = flags.conf.clone();
    let pidfile = (!flags.pidfile.is_empty()).then(|| PathBuf::from(&flags.pidfile));
    let quiet = flags.quiet;
    // Joined before the node setup: an instance leaving meanwhile must see this one.
    let registration = cli::register(&flags.statedir);
    if flags.setup_interface {
        // The local IPs may not be on the interface yet (it is being retried): bind anyway, so
        // that DNS is served the moment the setup loop puts them in place.
        nodecache::server::sockets::allow_nonlocal_binds();
    }
    let app = Arc::new(CacheApp::new(flags));
    app.init(metrics_started);
    if let Err(e) = app.spawn_periodic(interval) {
        tracing::error!("cannot start the network setup loop: {e}");
    }
    let mut exit_hooks: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    if !skip_teardown {
        let app = app.clone();
        exit_hooks.push(Box::new(move || {
            if let Err(e) = app.teardown() {
                tracing::error!("Teardown failed: {e}");
            }
        }));
    }
    let source =
        if conf.is_empty() { Source::File(PathBuf::from("Corefile")) } else { Source::File(PathBuf::from(conf)) };
    let status = cli::serve(ServeOptions { source, port, pidfile, quiet, exit_hooks, on_started: None, registration });
    std::process::exit(status);
}
