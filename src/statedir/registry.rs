//! Instances alive in a state directory, told apart by the `flock` each one holds on its own
//! file under `instances/`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A state directory shared by the instances on one node.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

/// This instance's place in the state directory; the lock on its file is held until
/// [`Registration::leave`] (or the process ends).
#[derive(Debug)]
pub struct Registration {
    dir: StateDir,
    id: String,
    file: Option<File>,
}

/// An exclusive `flock` on a file, released on drop.
struct Held(File);

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: unlocking a descriptor we own has no memory effects.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// Takes an exclusive lock on `file`; `wait` blocks for it, else `Ok(false)` when another
/// holder has it.
fn lock(file: &File, wait: bool) -> io::Result<bool> {
    let op = if wait { libc::LOCK_EX } else { libc::LOCK_EX | libc::LOCK_NB };
    loop {
        // SAFETY: flock on a descriptor we own has no memory effects.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !wait => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// A random instance id: the pid alone is not unique across pods' pid namespaces.
fn new_id() -> String {
    format!("{}-{:016x}", std::process::id(), rand::random::<u64>())
}

impl StateDir {
    /// Opens (creating if needed) the state directory at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<StateDir> {
        let root = root.into();
        std::fs::create_dir_all(root.join("instances"))?;
        Ok(StateDir { root })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Runs `f` holding the directory-wide lock (joining, leaving and teardown decisions).
    pub fn exclusive<T>(&self, f: impl FnOnce() -> T) -> io::Result<T> {
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(self.root.join("lock"))?;
        lock(&file, true)?;
        let _held = Held(file);
        Ok(f())
    }

    /// Registers this process as a live instance.
    pub fn register(&self) -> io::Result<Registration> {
        let id = new_id();
        let file = self.exclusive(|| -> io::Result<File> {
            let file = OpenOptions::new().create(true).truncate(true).write(true).open(self.instance_file(&id))?;
            if !lock(&file, false)? {
                return Err(io::Error::other("instance file is locked by another process"));
            }
            Ok(file)
        })??;
        Ok(Registration { dir: self.clone(), id, file: Some(file) })
    }

    fn instance_file(&self, id: &str) -> PathBuf {
        self.root.join("instances").join(format!("{id}.lock"))
    }

    /// The handover socket of instance `id`.
    pub fn socket_path(&self, id: &str) -> PathBuf {
        self.root.join("instances").join(format!("{id}.sock"))
    }

    /// Ids of the live instances other than `except`. Files of instances that died are removed
    /// on the way (with their sockets).
    pub fn live_instances(&self, except: Option<&str>) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root.join("instances")) else { return Vec::new() };
        let mut live = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".lock") else { continue };
            if Some(id) == except {
                continue;
            }
            let Ok(file) = OpenOptions::new().write(true).open(entry.path()) else { continue };
            match lock(&file, false) {
                Ok(false) => live.push(id.to_string()),
                Ok(true) => {
                    let _held = Held(file);
                    let _ = std::fs::remove_file(entry.path());
                    let _ = std::fs::remove_file(self.socket_path(id));
                }
                Err(_) => {}
            }
        }
        live.sort();
        live
    }
}

impl Registration {
    /// This instance's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The state directory.
    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    /// Other live instances.
    pub fn others(&self) -> Vec<String> {
        self.dir.live_instances(Some(&self.id))
    }

    /// Leaves the directory and runs `last_out` if no other instance is alive, all under the
    /// directory lock (an instance joining meanwhile waits, then finds the setup gone and makes
    /// it again). Returns whether this instance was the last.
    pub fn leave(mut self, last_out: impl FnOnce()) -> io::Result<bool> {
        let dir = self.dir.clone();
        dir.exclusive(|| {
            let _ = std::fs::remove_file(dir.socket_path(&self.id));
            let _ = std::fs::remove_file(dir.instance_file(&self.id));
            self.file.take();
            let last = dir.live_instances(None).is_empty();
            if last {
                last_out();
            }
            last
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn instances_see_each_other_and_the_last_one_out_knows() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = StateDir::open(tmp.path().join("state")).expect("open");
        let a = dir.register().expect("register a");
        let b = dir.register().expect("register b");
        assert_eq!(a.others(), vec![b.id().to_string()]);
        assert_eq!(b.others(), vec![a.id().to_string()]);
        let mut ran = false;
        assert!(!a.leave(|| ran = true).expect("leave a"), "b is still alive");
        assert!(!ran);
        assert!(b.others().is_empty());
        assert!(b.leave(|| ran = true).expect("leave b"), "b was the last");
        assert!(ran);
    }

    #[test]
    fn a_dead_instance_file_is_not_alive_and_is_cleaned_up() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = StateDir::open(tmp.path()).expect("open");
        // A file left by a process that died: nobody holds its lock.
        std::fs::write(dir.instance_file("123-dead"), b"").expect("write");
        std::fs::write(dir.socket_path("123-dead"), b"").expect("write");
        let me = dir.register().expect("register");
        assert!(me.others().is_empty());
        assert!(!dir.instance_file("123-dead").exists());
        assert!(!dir.socket_path("123-dead").exists());
    }
}
