//! Writes a file the way kubelet projects a ConfigMap volume: `NAME -> ..data/NAME`,
//! `..data -> ..<timestamp>`, and an update renames a fresh `..data` symlink over the old one.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A ConfigMap-style projected directory holding one key.
#[derive(Debug, Clone)]
pub struct ConfigMapDir {
    dir: PathBuf,
    key: String,
}

impl ConfigMapDir {
    /// Creates the layout in `dir` with `key` holding `content`.
    pub fn create(dir: &Path, key: &str, content: &str) -> std::io::Result<Self> {
        let me = Self { dir: dir.to_path_buf(), key: key.to_string() };
        let ts = me.write_version(content)?;
        symlink(&ts, dir.join("..data"))?;
        symlink(Path::new("..data").join(key), dir.join(key))?;
        Ok(me)
    }

    /// The path the server reads (`DIR/KEY`, a symlink).
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.key)
    }

    /// Replaces the content: new timestamped dir, new `..data` symlink renamed over the old one,
    /// then the old dir removed.
    pub fn update(&self, content: &str) -> std::io::Result<()> {
        let data = self.dir.join("..data");
        let old = fs::read_link(&data)?;
        let ts = self.write_version(content)?;
        let tmp = self.dir.join("..data_tmp");
        let _ = fs::remove_file(&tmp);
        symlink(&ts, &tmp)?;
        fs::rename(&tmp, &data)?;
        fs::remove_dir_all(self.dir.join(old))?;
        Ok(())
    }

    fn write_version(&self, content: &str) -> std::io::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut n = 0;
        let name = loop {
            let name = format!("..{}_{:09}_{n}", now.as_secs(), now.subsec_nanos());
            if !self.dir.join(&name).exists() {
                break name;
            }
            n += 1;
        };
        let path = self.dir.join(&name);
        fs::create_dir(&path)?;
        fs::write(path.join(&self.key), content)?;
        Ok(name)
    }
}
