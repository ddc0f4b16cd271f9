//! Crash-safe file and directory writes: write into a temporary sibling, fsync, rename, fsync the parent.
//! A reader sees the old content or the new, never a partial one.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use super::error::{Result, TrainError};

pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp.{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(TrainError::io(&tmp))?;
    f.write_all(bytes).map_err(TrainError::io(&tmp))?;
    f.sync_all().map_err(TrainError::io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(TrainError::io(path))?;
    sync_dir(parent)
}

/// Write `bytes` into a new file inside a directory being staged (fsynced, no rename needed).
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(TrainError::io(path))?;
    f.write_all(bytes).map_err(TrainError::io(path))?;
    f.sync_all().map_err(TrainError::io(path))
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    // Directories can be opened read-only and fsynced on Unix; elsewhere this is best effort.
    match File::open(dir) {
        Ok(d) => {
            let _ = d.sync_all();
            Ok(())
        }
        Err(e) => Err(TrainError::Io {
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}
