//! Verification stamps: what makes a hit trustworthy without re-hashing every file on every run.
//!
//! When an entry's files have been hashed and found to match the manifest (at commit, or by a
//! lookup that re-hashed them), the store writes `stamp.json` beside `manifest.json`: for each
//! file its inode, length, modification time and status-change time (ctime). A lookup then trusts
//! the entry only if every file still has exactly those stat values; any write, truncation,
//! replacement or copy of a file changes its ctime (which no user-level call can set back), so the
//! lookup re-hashes that entry and a corrupt one is moved aside and recomputed, never used.
//!
//! Not covered: corruption below the filesystem that leaves stat unchanged (bit rot, a block
//! device error). `rora cache verify` re-hashes everything and finds that.
//!
//! Timestamps are coarse (a clock tick of a few ms), so a file changed in the tick the stamp was
//! written in is treated as changed (see [`is_fresh`]).
//!
//! A missing, unreadable or stale stamp only costs a re-hash; writing one is best effort (a
//! read-only store keeps serving hits, re-hashing them each time).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fsutil;
use super::manifest::{Manifest, OUT_DIR};

/// The stamp file inside an entry dir (beside `manifest.json`, outside `out/`).
pub const STAMP_FILE: &str = "stamp.json";

/// Stat values of one file that change whenever its bytes can have changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileStat {
    path: String,
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    key: String,
    files: Vec<FileStat>,
}

fn current(manifest: &Manifest, entry_dir: &Path) -> Option<Stamp> {
    let out = entry_dir.join(OUT_DIR);
    let files = manifest
        .files
        .iter()
        .map(|f| {
            let m = fs::symlink_metadata(out.join(&f.path)).ok()?;
            Some(FileStat {
                path: f.path.clone(),
                dev: m.dev(),
                ino: m.ino(),
                len: m.len(),
                mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
                ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Stamp {
        key: manifest.key.clone(),
        files,
    })
}

/// Whether the entry's files are exactly as they were when last found to match their hashes.
///
/// File timestamps come from a coarse clock (a few ms), so a write in the same tick as the stamp
/// could leave every stat value unchanged. As git does for its index, a file whose ctime is not
/// strictly older than the stamp file's own mtime (same clock) is "racily clean" and re-hashed.
pub fn is_fresh(manifest: &Manifest, entry_dir: &Path) -> bool {
    let path = entry_dir.join(STAMP_FILE);
    let (Ok(bytes), Ok(meta)) = (fs::read(&path), fs::metadata(&path)) else {
        return false;
    };
    let Ok(saved) = serde_json::from_slice::<Stamp>(&bytes) else {
        return false;
    };
    let written = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    current(manifest, entry_dir)
        .is_some_and(|now| now == saved && now.files.iter().all(|f| f.ctime_ns < written))
}

/// Record that the entry's files match their hashes as of now. Best effort.
pub fn write(manifest: &Manifest, entry_dir: &Path) {
    if let Some(stamp) = current(manifest, entry_dir)
        && let Ok(bytes) = serde_json::to_vec(&stamp)
    {
        let _ = fsutil::write_atomic(&entry_dir.join(STAMP_FILE), &bytes);
    }
}
