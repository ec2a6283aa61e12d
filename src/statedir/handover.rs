//! Moving a cache between instances through the state directory: a running instance serves its
//! cache as a snapshot on a unix socket (one snapshot per connection); a starting instance
//! takes it from a live instance, else from the snapshot file the last instance to stop left.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use super::{Registration, StateDir, SNAPSHOT_FILE};
use crate::engine::Engine;
use crate::plugin::cache::snapshot::MAX_BYTES;

/// How long a starting instance waits for another instance's snapshot.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Serves `engine`'s cache on this instance's socket, on a thread of its own.
pub fn serve(reg: &Registration, engine: Arc<Engine>) -> std::io::Result<()> {
    let path = reg.dir().socket_path(reg.id());
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::thread::Builder::new().name("cache-handover".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_write_timeout(Some(FETCH_TIMEOUT));
            let bytes = engine.cache_snapshot();
            match conn.write_all(&bytes) {
                Ok(()) => tracing::info!("cache handed over to a starting instance ({} bytes)", bytes.len()),
                Err(e) => tracing::warn!("cache handover failed: {e}"),
            }
        }
    })?;
    Ok(())
}

/// Reads one snapshot from instance `id`'s socket.
fn fetch_from(dir: &StateDir, id: &str) -> std::io::Result<Vec<u8>> {
    let conn = UnixStream::connect(dir.socket_path(id))?;
    conn.set_read_timeout(Some(FETCH_TIMEOUT))?;
    let mut bytes = Vec::new();
    conn.take(MAX_BYTES as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The cache a starting instance should begin with, and where it came from: a live instance's
/// (the first that answers), else the snapshot file (removed once read). `None` when there is
/// neither.
pub fn fetch(reg: &Registration) -> Option<(Vec<u8>, String)> {
    for id in reg.others() {
        match fetch_from(reg.dir(), &id) {
            Ok(bytes) => return Some((bytes, format!("running instance {id}"))),
            Err(e) => tracing::info!("no cache from instance {id}: {e}"),
        }
    }
    let path = reg.dir().path().join(SNAPSHOT_FILE);
    let bytes = std::fs::read(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    Some((bytes, path.display().to_string()))
}

/// Writes `engine`'s cache to the snapshot file (through a temporary file and a rename) when no
/// live instance is left in `dir` to keep it (`id` names this one's temporary file).
pub fn save_if_alone(dir: &StateDir, id: &str, engine: &Engine) {
    if !dir.live_instances(Some(id)).is_empty() {
        return;
    }
    let path = dir.path().join(SNAPSHOT_FILE);
    let tmp = dir.path().join(format!("{SNAPSHOT_FILE}.{id}.tmp"));
    let bytes = engine.cache_snapshot();
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, &path));
    match written {
        Ok(()) => tracing::info!("cache snapshot written to {} ({} bytes)", path.display(), bytes.len()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("cache snapshot not written to {}: {e}", path.display());
        }
    }
}
