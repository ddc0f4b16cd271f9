//! Per-key advisory locks (`v1/locks/<key>.lock`, `flock` through std's `File::lock`). A lock is held by an open
//! file description, so it excludes other threads of this process as well as other processes, and
//! the kernel releases it when its holder dies (SIGKILL included). Lock files are never deleted:
//! deleting one while another process waits on it would let two holders in.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::error::{CacheError, Result};

/// An exclusive lock on one key; released on drop.
#[derive(Debug)]
pub struct KeyLock {
    file: File,
    path: PathBuf,
}

impl KeyLock {
    /// Take the lock, blocking while another holder has it. `on_wait` is called once, before
    /// blocking, only if the lock is contended (so a reporter can say "waiting for ...").
    pub fn acquire(path: &Path, on_wait: &mut dyn FnMut()) -> Result<KeyLock> {
        if let Some(lock) = Self::try_acquire(path)? {
            return Ok(lock);
        }
        on_wait();
        let file = open(path)?;
        file.lock().map_err(CacheError::io("lock", path))?;
        Ok(KeyLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Take the lock if nobody holds it; `Ok(None)` if it is held.
    pub fn try_acquire(path: &Path) -> Result<Option<KeyLock>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(KeyLock {
                file,
                path: path.to_path_buf(),
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(CacheError::Io {
                op: "lock",
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes the order explicit.
        let _ = self.file.unlock();
    }
}

fn open(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(CacheError::io("create lock directory", dir))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(CacheError::io("open lock file", path))
}
