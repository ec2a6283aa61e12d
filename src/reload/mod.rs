//! Live reload: file watching, interval polling as a fallback, SIGUSR1, and the swap of the
//! running configuration. A reload that fails keeps the old configuration serving.
//!
//! With `reload` in the Corefile, the Corefile's directory is watched (a change is checked
//! once a burst of events settles) and the content is also checked every reload period, as
//! CoreDNS does; a check reloads only when the parsed content's fingerprint changed. SIGUSR1
//! always reloads, with or without `reload`.
//!
//! An empty or comment-only Corefile is never loaded on reload (CoreDNS would replace the
//! running servers with its built-in default, which has no `reload`): it is refused, logged and
//! counted in `coredns_reload_failed_total`, and the watcher carries on with the old
//! configuration.

pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::engine::{Engine, ReloadError, Source};

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
/// has `reload` (the last such block, whose setup runs last in CoreDNS).
pub fn reload_settings(engine: &Engine) -> Option<(Duration, Duration)> {
    reload_config(engine).map(|r| (r.interval(), r.jitter()))
}

/// The check period CoreDNS would use: each block's `reload` setup picks its period (interval
/// plus jitter, chosen at setup) and overwrites the shared value, so the last block with
/// `reload` wins.
pub fn reload_period(engine: &Engine) -> Option<Duration> {
    reload_config(engine).map(|r| r.period().max(Duration::from_millis(1)))
}

fn reload_config(engine: &Engine) -> Option<crate::plugin::reload::setup::Config> {
    let rt = engine.runtime()?;
    rt.plan.blocks.iter().rev().find_map(|b| {
        let cfg = b.plugin("reload")?;
        cfg.as_any().downcast_ref::<crate::plugin::reload::setup::Config>().cloned()
    })
}

/// Logs `Running configuration SHA512 = ...` and sets `coredns_reload_version_info`, as the
/// `reload` plugin does when an instance with it starts.
pub fn announce(engine: &Engine) {
    let fp = engine.fingerprint();
    tracing::info!(target: "plugin/reload", "Running configuration SHA512 = {fp}");
    crate::observe::dns_metrics::set_reload_version(&fp);
}

/// Attempts one reload and logs/counts the result as CoreDNS does. Returns whether a new
/// runtime was applied.
pub fn attempt(engine: &Engine, source: &Source, trigger: Trigger) -> bool {
    let force = trigger == Trigger::Signal;
    match engine.reload_checked(source, force) {
        Ok(true) => {
            if reload_config(engine).is_some() {
                announce(engine);
            }
            tracing::info!("Reloading complete");
            true
        }
        Ok(false) => false,
        Err(e @ ReloadError::Empty(_)) => {
            // Our own guard (CoreDNS would load the built-in default): counted for every
            // trigger, SIGUSR1 included, since it is a refused configuration.
            if force {
                tracing::error!("SIGUSR1: {e}");
            } else {
                tracing::error!(target: "plugin/reload", "{e}");
            }
            crate::observe::dns_metrics::reload_failed_inc();
            false
        }
        Err(e) if force => {
            tracing::error!("SIGUSR1: {e}");
            false
        }
        Err(ReloadError::Read(e)) => {
            tracing::debug!(target: "plugin/reload", "Corefile not readable: {e}");
            false
        }
        Err(ReloadError::Parse(e)) => {
            tracing::warn!(target: "plugin/reload", "Corefile parse failed: {}", e.trim_end());
            false
        }
        Err(ReloadError::Failed(e)) => {
            tracing::error!(target: "plugin/reload", "Corefile changed but reload failed: {}", e.trim_end());
            crate::observe::dns_metrics::reload_failed_inc();
            false
        }
    }
}

/// Runs [`attempt`] on the blocking pool, so parsing and building never occupy a worker that
/// serves queries.
async fn attempt_off_path(engine: &Arc<Engine>, source: &Source, trigger: Trigger) -> bool {
    let (e, s) = (engine.clone(), source.clone());
    tokio::task::spawn_blocking(move || attempt(&e, &s, trigger)).await.unwrap_or(false)
}

/// Runs the reloader until `signals` closes: file events (debounced) and the poll period apply
/// only while the configuration has `reload`; `signals` (SIGUSR1) always reload.
pub async fn run(engine: Arc<Engine>, source: Source, mut signals: mpsc::UnboundedReceiver<Trigger>) {
    let (tx, mut events) = mpsc::unbounded_channel();
    let dirs: Vec<std::path::PathBuf> = match &source {
        Source::File(p) => vec![watch::dir_of(p)],
        Source::Text { .. } => Vec::new(),
    };
    let arm = |tx: &mpsc::UnboundedSender<()>| {
        if dirs.is_empty() {
            None
        } else {
            watch::watch_dirs(&dirs, tx.clone()).ok()
        }
    };
    let mut watcher = arm(&tx);
    if reload_config(&engine).is_some() {
        announce(&engine);
    }
    let mut period = reload_period(&engine);
    let mut next_tick = period.map(|p| Instant::now() + p);
    loop {
        let tick = next_tick.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let applied = tokio::select! {
            biased;
            t = signals.recv() => match t {
                Some(t) => attempt_off_path(&engine, &source, t).await,
                None => return,
            },
            ev = events.recv() => match ev {
                Some(()) if period.is_some() => {
                    if !watch::settle(&mut events, watch::DEBOUNCE, watch::MAX_DELAY).await {
                        return;
                    }
                    attempt_off_path(&engine, &source, Trigger::Check).await
                }
                _ => false,
            },
            _ = tokio::time::sleep_until(tick), if next_tick.is_some() => {
                next_tick = period.map(|p| Instant::now() + p);
                attempt_off_path(&engine, &source, Trigger::Check).await
            }
        };
        if watcher.as_ref().is_none_or(watch::DirWatcher::stale) && !dirs.is_empty() {
            // The directory was deleted, replaced or (re)created: watch what is there now.
            watcher = arm(&tx);
        }
        if applied {
            // A new instance: the period comes from its `reload` setup, counted from now.
            period = reload_period(&engine);
            next_tick = period.map(|p| Instant::now() + p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn engine(corefile: &str) -> Engine {
        let e = Engine::new(0, 1);
        let source = Source::Text { name: "Corefile".into(), text: corefile.into() };
        e.start(&source).expect("start");
        e
    }

    #[tokio::test]
    async fn the_last_block_with_reload_sets_the_period() {
        let e = engine(
            "a.:0 {\n bind 127.0.0.1\n reload 10s 0\n whoami\n}\nb.:0 {\n bind 127.0.0.1\n whoami\n}\n\
             c.:0 {\n bind 127.0.0.1\n reload 4s 0\n whoami\n}\n",
        );
        assert_eq!(reload_period(&e), Some(Duration::from_secs(4)));
        assert_eq!(reload_settings(&e), Some((Duration::from_secs(4), Duration::ZERO)));
        e.stop();
        let e = engine("a.:0 {\n bind 127.0.0.1\n whoami\n}\n");
        assert_eq!(reload_period(&e), None);
        e.stop();
    }

    #[tokio::test]
    async fn failed_content_is_not_retried_until_it_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("Corefile");
        let good = "a.:0 {\n bind 127.0.0.1\n reload 2s\n whoami\n}\n";
        std::fs::write(&path, good).expect("write");
        let source = Source::File(path.clone());
        let e = Engine::new(0, 1);
        e.start(&source).expect("start");
        let before = e.fingerprint();
        assert_eq!(e.reload_checked(&source, false), Ok(false));
        // A whitespace-only edit is no change.
        std::fs::write(&path, good.replace(" whoami", "\twhoami   ")).expect("write");
        assert_eq!(e.reload_checked(&source, false), Ok(false));
        let broken = good.replace("whoami", "whoami {\n nonsense\n }");
        std::fs::write(&path, &broken).expect("write");
        assert!(matches!(e.reload_checked(&source, false), Err(ReloadError::Failed(_))));
        assert_eq!(e.reload_checked(&source, false), Ok(false), "the same broken content was tried again");
        assert_eq!(e.fingerprint(), before);
        // A syntax error is a parse failure, retried every time.
        std::fs::write(&path, "a.:0 {\n").expect("write");
        assert!(matches!(e.reload_checked(&source, false), Err(ReloadError::Parse(_))));
        assert!(matches!(e.reload_checked(&source, false), Err(ReloadError::Parse(_))));
        std::fs::write(&path, good.replace("2s", "3s")).expect("write");
        assert_eq!(e.reload_checked(&source, false), Ok(true));
        assert_ne!(e.fingerprint(), before);
        // SIGUSR1 reloads unchanged content.
        assert_eq!(e.reload_checked(&source, true), Ok(true));
        e.stop();
    }

    #[tokio::test]
    async fn blank_corefiles_are_refused_once_and_a_good_one_follows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("Corefile");
        let good = "a.:0 {\n bind 127.0.0.1\n reload 2s\n whoami\n}\n";
        std::fs::write(&path, good).expect("write");
        let source = Source::File(path.clone());
        let e = Engine::new(0, 1);
        e.start(&source).expect("start");
        let before = e.fingerprint();
        let name = path.display().to_string();
        for blank in ["", "  \n\t\n", "# only a comment\n   # another\n", "\u{FEFF}\n"] {
            std::fs::write(&path, blank).expect("write");
            // Forced (SIGUSR1) or not, it is refused; the running configuration stays.
            assert_eq!(e.reload_checked(&source, true), Err(ReloadError::Empty(name.clone())), "{blank:?}");
            assert_eq!(e.fingerprint(), before);
            assert_eq!(reload_settings(&e).map(|r| r.0), Some(Duration::from_secs(2)), "`reload` was lost");
        }
        // Seen once, the blank content is not reported again by the checks.
        assert_eq!(e.reload_checked(&source, false), Ok(false));
        assert!(e.reload_checked(&source, true).is_err());
        assert!(ReloadError::Empty(name.clone()).to_string().contains("is empty: keeping the running configuration"));
        std::fs::write(&path, good.replace("2s", "3s")).expect("write");
        assert_eq!(e.reload_checked(&source, false), Ok(true));
        assert_eq!(reload_settings(&e).map(|r| r.0), Some(Duration::from_secs(3)));
        e.stop();
    }

    #[test]
    fn a_blank_corefile_does_not_load_but_the_default_does() {
        let blank = Source::Text { name: "blank".into(), text: "# nothing\n".into() };
        let err = crate::engine::load(&blank, 53).err().unwrap_or_default();
        assert!(err.contains("Corefile blank is empty"), "{err}");
        let default = Source::Text { name: "default".into(), text: crate::engine::DEFAULT_COREFILE.into() };
        assert!(crate::engine::load(&default, 53).is_ok());
        // Tokens that make no server block (a snippet only) still get CoreDNS's fallback.
        let snippet = Source::Text { name: "snip".into(), text: "(s) {\n whoami\n}\n".into() };
        assert!(crate::engine::load(&snippet, 53).is_ok());
    }
}
