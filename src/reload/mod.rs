//! Live reload: file watching, interval polling as a fallback, SIGUSR1, and the swap of the
//! running configuration. A reload that fails keeps the old configuration serving.

pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;

use crate::engine::{Engine, Source};

/// Why a reload was attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A watched file changed, or the poll interval elapsed: reload only if the parsed
    /// configuration changed.
    Check,
    /// SIGUSR1: reload unconditionally.
    Signal,
}

/// The `reload` plugin's interval and jitter from the running configuration, if any block
/// has `reload`.
pub fn reload_settings(engine: &Engine) -> Option<(Duration, Duration)> {
    let rt = engine.runtime()?;
    rt.plan.blocks.iter().find_map(|b| {
        let cfg = b.plugin("reload")?;
        let r = cfg.as_any().downcast_ref::<crate::plugin::reload::setup::Config>()?;
        Some((r.interval(), r.jitter()))
    })
}

/// The poll period: interval plus a uniform value in [-jitter/2, jitter/2).
fn period(interval: Duration, jitter: Duration) -> Duration {
    let j = jitter.min(interval / 2).as_millis() as i64;
    if j == 0 {
        return interval;
    }
    let delta = rand::rng().random_range(-j / 2..j - j / 2);
    Duration::from_millis((interval.as_millis() as i64 + delta).max(1) as u64)
}

/// Attempts one reload and logs/counts the result as CoreDNS does.
pub fn attempt(engine: &Engine, source: &Source, trigger: Trigger) {
    let force = trigger == Trigger::Signal;
    match engine.reload(source, force) {
        Ok(true) => {
            tracing::info!("Reloading complete");
            tracing::info!(target: "plugin/reload", "Running configuration SHA512 = {}", engine.fingerprint());
            crate::observe::dns_metrics::set_reload_version(&engine.fingerprint());
        }
        Ok(false) => {}
        Err(e) => {
            if force {
                tracing::error!("SIGUSR1: {e}");
            } else {
                tracing::error!(target: "plugin/reload", "Corefile changed but reload failed: {e}");
            }
            crate::observe::dns_metrics::reload_failed_inc();
        }
    }
}

/// Runs the reloader until the process ends: file events (debounced) and the poll interval
/// apply only while the configuration has `reload`; `signals` (SIGUSR1) always reload.
pub async fn run(engine: Arc<Engine>, source: Source, mut signals: mpsc::UnboundedReceiver<Trigger>) {
    let (tx, mut events) = mpsc::unbounded_channel();
    let _watcher = match &source {
        Source::File(p) => watch::watch_dirs(&[watch::dir_of(p)], tx).ok(),
        Source::Text { .. } => None,
    };
    loop {
        let settings = reload_settings(&engine);
        let poll = settings.map(|(i, j)| period(i, j)).unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            more = watch::next_burst(&mut events, Duration::from_millis(150)), if settings.is_some() => {
                if more {
                    attempt(&engine, &source, Trigger::Check);
                } else {
                    tokio::time::sleep(poll).await;
                }
            }
            _ = tokio::time::sleep(poll), if settings.is_some() => attempt(&engine, &source, Trigger::Check),
            t = signals.recv() => match t {
                Some(t) => attempt(&engine, &source, t),
                None => return,
            },
        }
    }
}
