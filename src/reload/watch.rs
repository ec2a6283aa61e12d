//! Watching the directories that hold configuration files. Kubernetes updates a ConfigMap
//! mount by writing a new timestamped directory and renaming a `..data` symlink over the old
//! one, and editors save by writing a temporary file and renaming it over the original, so the
//! directory is watched, not the file: any change there wakes the reloader, which then
//! compares content. Read-only access events are ignored (the reloader's own reads would
//! otherwise wake it again).

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Quiet time that ends a burst of events (a ConfigMap update is several renames).
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Longest a continuous stream of events can delay a check.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// Keeps the OS watcher alive; dropping it stops the events.
pub struct DirWatcher {
    _watcher: RecommendedWatcher,
    /// Each watched directory and its identity (device, inode) when the watch was set.
    identities: Vec<(PathBuf, Option<(u64, u64)>)>,
}

impl DirWatcher {
    /// Whether a watched directory was removed, replaced or created since the watch was set
    /// (a watch follows the inode, so the watcher must then be made again).
    pub fn stale(&self) -> bool {
        self.identities.iter().any(|(d, id)| identity(d) != *id)
    }
}

fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// The directory to watch for `path`: its parent (or `.`).
pub fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ if path.has_root() => PathBuf::from("/"),
        _ => PathBuf::from("."),
    }
}

/// Whether an event can mean the content changed (everything but plain reads and opens).
fn is_change(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Access(_))
}

/// Watches `dirs` (non-recursively, duplicates once) and calls `on_change` from the watcher's
/// thread for every change event. Directories that cannot be watched are logged and skipped:
/// the poll fallback still covers them.
pub fn watch_dirs_with(dirs: &[PathBuf], on_change: impl Fn() + Send + 'static) -> notify::Result<DirWatcher> {
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        Ok(ev) if is_change(&ev.kind) => on_change(),
        Ok(_) => {}
        // An overflow or backend error may have lost events: check anyway.
        Err(_) => on_change(),
    })?;
    let mut identities: Vec<(PathBuf, Option<(u64, u64)>)> = Vec::new();
    for d in dirs {
        if identities.iter().any(|(seen, _)| seen == d) {
            continue;
        }
        let id = identity(d);
        if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
            tracing::warn!("cannot watch {}: {e}", d.display());
        }
        identities.push((d.clone(), id));
    }
    Ok(DirWatcher { _watcher: watcher, identities })
}

/// [`watch_dirs_with`] sending `()` on `tx` for every change event.
pub fn watch_dirs(dirs: &[PathBuf], tx: mpsc::UnboundedSender<()>) -> notify::Result<DirWatcher> {
    watch_dirs_with(dirs, move || {
        let _ = tx.send(());
    })
}

/// After a first event has been received: waits until `quiet` passes without further events,
/// or `max` since the call, whichever is first (debounce a burst). Returns false when the
/// channel is closed.
pub async fn settle(rx: &mut mpsc::UnboundedReceiver<()>, quiet: Duration, max: Duration) -> bool {
    let give_up = tokio::time::Instant::now() + max;
    loop {
        let until = (tokio::time::Instant::now() + quiet).min(give_up);
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(())) if tokio::time::Instant::now() < give_up => continue,
            Ok(Some(())) => return true,
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
}

/// Waits for the next event, then [`settle`]s. Returns false when the channel is closed.
pub async fn next_burst(rx: &mut mpsc::UnboundedReceiver<()>, quiet: Duration) -> bool {
    if rx.recv().await.is_none() {
        return false;
    }
    settle(rx, quiet, MAX_DELAY).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn dir_of_paths() {
        assert_eq!(dir_of(Path::new("/etc/coredns/Corefile")), PathBuf::from("/etc/coredns"));
        assert_eq!(dir_of(Path::new("Corefile")), PathBuf::from("."));
        assert_eq!(dir_of(Path::new("/Corefile")), PathBuf::from("/"));
    }

    #[tokio::test]
    async fn a_configmap_swap_wakes_the_watcher_once_settled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _w = watch_dirs(&[dir.path().to_path_buf()], tx).expect("watch");
        let cm = nodecache_conformance::configmap::ConfigMapDir::create(dir.path(), "Corefile", "a").expect("cm");
        assert!(next_burst(&mut rx, DEBOUNCE).await);
        cm.update("b").expect("update");
        assert!(next_burst(&mut rx, DEBOUNCE).await);
        assert_eq!(std::fs::read_to_string(cm.path()).expect("read"), "b");
        // Reading the file is not a change.
        while rx.try_recv().is_ok() {}
        let _ = std::fs::read_to_string(cm.path()).expect("read");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(rx.try_recv().is_err(), "a read woke the watcher");
    }
}
