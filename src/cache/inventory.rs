//! Listing the store for `cache ls`, `verify` and `gc`: every entry dir, its manifest (or why it
//! has none), and its size on disk.

use std::fs;
use std::path::PathBuf;

use super::error::{CacheError, Result, validate_key};
use super::fsutil;
use super::layout;
use super::manifest::{Defect, Manifest};
use super::store::Store;

/// One entry dir as found on disk.
#[derive(Debug, Clone)]
pub struct EntryInfo {
    pub key: String,
    pub dir: PathBuf,
    /// The manifest, or why it could not be read (the entry is then corrupt).
    pub manifest: std::result::Result<Manifest, Defect>,
    /// Bytes of files under the entry dir (manifest included).
    pub disk_size: u64,
    /// Last use (a hit or the commit): the entry dir's mtime.
    pub last_used: Option<std::time::SystemTime>,
}

impl EntryInfo {
    pub fn stage(&self) -> &str {
        self.manifest
            .as_ref()
            .map(|m| m.stage.as_str())
            .unwrap_or("?")
    }

    pub fn created(&self) -> Option<u64> {
        self.manifest.as_ref().ok().map(|m| m.created)
    }
}

/// Every entry dir, sorted by key. A missing store lists as empty.
pub fn list(store: &Store) -> Result<Vec<EntryInfo>> {
    let entries = layout::entries_dir(store.root());
    let mut out = Vec::new();
    if !entries.is_dir() {
        return Ok(out);
    }
    for shard in fs::read_dir(&entries).map_err(CacheError::io("list", &entries))? {
        let shard = shard.map_err(CacheError::io("list", &entries))?.path();
        if !shard.is_dir() {
            continue;
        }
        for ent in fs::read_dir(&shard).map_err(CacheError::io("list", &shard))? {
            let dir = ent.map_err(CacheError::io("list", &shard))?.path();
            let Some(key) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            if validate_key(&key).is_err() || !dir.is_dir() {
                continue;
            }
            let manifest = Manifest::load(&dir, &key);
            let disk_size = fsutil::tree_size(&dir);
            let last_used = fs::metadata(&dir).and_then(|m| m.modified()).ok();
            out.push(EntryInfo {
                key,
                dir,
                manifest,
                disk_size,
                last_used,
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}
