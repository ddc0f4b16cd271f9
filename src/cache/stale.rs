//! Cleanup of what crashed processes leave behind: staging dirs (`<key>.<pid>.<rand>`) and trash.
//!
//! A staging dir exists only while its creator holds the key's lock, so a staging dir whose key
//! lock can be taken belongs to a dead process (the kernel dropped its lock) and is removed. This
//! is stronger than a pid check: it is not fooled by pid reuse.

use std::fs;

use super::error::{CacheError, Result, validate_key};
use super::layout;
use super::lock::KeyLock;
use super::store::Store;

/// What a cleanup removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanReport {
    pub staging_removed: usize,
    pub trash_removed: usize,
}

/// Remove stale staging dirs and leftover trash. Dirs of live reservations are left alone.
pub fn clean(store: &Store) -> Result<CleanReport> {
    let mut report = CleanReport::default();
    let staging = layout::staging_root(store.root());
    if staging.is_dir() {
        let rd = fs::read_dir(&staging).map_err(CacheError::io("list", &staging))?;
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            let key = name.split('.').next().unwrap_or("");
            if validate_key(key).is_err() {
                continue;
            }
            let Some(_lock) = KeyLock::try_acquire(&layout::lock_path(store.root(), key))? else {
                continue;
            };
            if fs::remove_dir_all(ent.path()).is_ok() {
                report.staging_removed += 1;
            }
        }
    }
    let trash = layout::trash_root(store.root());
    if trash.is_dir() {
        let rd = fs::read_dir(&trash).map_err(CacheError::io("list", &trash))?;
        for ent in rd.flatten() {
            // Trash items are never read; another process may be deleting the same one.
            if fs::remove_dir_all(ent.path()).is_ok() {
                report.trash_removed += 1;
            }
        }
    }
    Ok(report)
}
