//! What the Slurm executor needs of the store's filesystem, checked before anything is submitted:
//! advisory locks that exclude another open file description (flock; on NFS they must reach the
//! server, on Lustre the `flock` mount option), and rename within the store. A store where either
//! fails is refused with its path; running there would let two nodes compute (and commit) one key.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use super::error::SlurmError;
use crate::cache::layout;

pub fn check_store(root: &Path) -> Result<(), SlurmError> {
    let err = |why: String| SlurmError::Store {
        path: root.to_path_buf(),
        why,
    };
    let dir = layout::locks_root(root);
    std::fs::create_dir_all(&dir)
        .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    let probe = dir.join(format!(".probe.{}.lock", std::process::id()));
    let open = || -> Result<File, SlurmError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&probe)
            .map_err(|e| err(format!("cannot open {}: {e}", probe.display())))
    };
    let (a, b) = (open()?, open()?);
    let result = match a.try_lock() {
        Err(e) => Err(err(format!("flock on {} failed: {e}", probe.display()))),
        Ok(()) => match b.try_lock() {
            Err(TryLockError::WouldBlock) => Ok(()),
            Ok(()) => Err(err(format!(
                "a second lock on {} was granted while the first was held",
                probe.display()
            ))),
            Err(TryLockError::Error(e)) => {
                Err(err(format!("flock on {} failed: {e}", probe.display())))
            }
        },
    };
    drop((a, b));
    let _ = std::fs::remove_file(&probe);
    result?;

    let staging = layout::staging_root(root);
    std::fs::create_dir_all(&staging)
        .map_err(|e| err(format!("cannot create {}: {e}", staging.display())))?;
    let from = staging.join(format!(".probe.{}", std::process::id()));
    let to = staging.join(format!(".probe.{}.renamed", std::process::id()));
    std::fs::write(&from, b"probe")
        .map_err(|e| err(format!("cannot write {}: {e}", from.display())))?;
    let renamed = std::fs::rename(&from, &to);
    let seen = std::fs::read(&to).map(|b| b == b"probe").unwrap_or(false);
    let _ = std::fs::remove_file(&from);
    let _ = std::fs::remove_file(&to);
    match renamed {
        Err(e) => Err(err(format!(
            "rename within {} failed: {e}",
            staging.display()
        ))),
        Ok(()) if !seen => Err(err(format!(
            "a file renamed within {} was not there afterwards",
            staging.display()
        ))),
        Ok(()) => Ok(()),
    }
}
