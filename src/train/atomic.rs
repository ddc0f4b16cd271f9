//! The training loop's crash-safe writes: [`crate::fsx`] with [`TrainError`]s that name the path.

use std::path::Path;

use super::error::{Result, TrainError};

/// Replace `path` atomically ([`crate::fsx::write_atomic`]).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fsx::write_atomic(path, bytes).map_err(TrainError::io(path))
}

/// Write `bytes` into a new file inside a directory being staged (fsynced, no rename needed).
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fsx::write_new_synced(path, bytes).map_err(TrainError::io(path))
}

/// fsync a directory: opening it must work; the fsync itself is best effort (as before the
/// write helpers were shared), since some file systems refuse it on directories.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = std::fs::File::open(dir).map_err(TrainError::io(dir))?;
    let _ = d.sync_all();
    Ok(())
}
