//! Watching the directories that hold configuration files. Kubernetes updates a ConfigMap
//! mount by writing a new timestamped directory and renaming a `..data` symlink over the old
//! one, so the directory is watched, not the file; any event there wakes the reloader, which
//! then compares content.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Keeps the OS watcher alive; events arrive on the channel given to [`watch_dirs`].
pub struct DirWatcher {
    _watcher: RecommendedWatcher,
}

/// The directory to watch for `path`: its parent (or `.`).
pub fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Watches `dirs` (non-recursively) and sends `()` on `tx` for every event. Directories that
/// do not exist are skipped (the poll fallback still covers them).
pub fn watch_dirs(dirs: &[PathBuf], tx: mpsc::UnboundedSender<()>) -> notify::Result<DirWatcher> {
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    })?;
    let mut seen: Vec<&PathBuf> = Vec::new();
    for d in dirs {
        if seen.contains(&d) {
            continue;
        }
        seen.push(d);
        if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
            tracing::warn!("cannot watch {}: {e}", d.display());
        }
    }
    Ok(DirWatcher { _watcher: watcher })
}

/// Waits for the next event, then for `quiet` without further events (debounce a burst).
/// Returns false when the channel is closed.
pub async fn next_burst(rx: &mut mpsc::UnboundedReceiver<()>, quiet: Duration) -> bool {
    if rx.recv().await.is_none() {
        return false;
    }
    loop {
        match tokio::time::timeout(quiet, rx.recv()).await {
            Ok(Some(())) => continue,
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
}
