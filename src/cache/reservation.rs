//! A reservation: the right (and the lock) to compute one key. The stage writes into
//! [`Reservation::out_dir`] (inside `v1/staging/<key>.<pid>.<rand>/`); [`Reservation::commit`]
//! hashes and fsyncs the outputs, writes `manifest.json` last, and renames the staging dir into
//! `entries/` in one step. Dropping a reservation without committing deletes the staging dir, and
//! a failing commit leaves no entry: the rename is the last thing that can fail.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::entry::Entry;
use super::error::{CacheError, Result};
use super::fsutil::{self, Node};
use super::layout;
use super::lock::KeyLock;
use super::manifest::{
    CommitInfo, Defect, FileRecord, MANIFEST_FILE, MANIFEST_FORMAT, Manifest, OUT_DIR,
};
use super::stamp;
use super::store::Store;

#[must_use = "dropping a reservation discards its outputs; call commit"]
#[derive(Debug)]
pub struct Reservation {
    store: Store,
    key: String,
    staging: PathBuf,
    discarded: Option<Defect>,
    committed: bool,
    // Declared last: dropped after the staging dir is removed.
    _lock: KeyLock,
}

impl Reservation {
    pub(crate) fn create(
        store: &Store,
        key: &str,
        lock: KeyLock,
        discarded: Option<Defect>,
    ) -> Result<Reservation> {
        let name = format!("{key}.{}.{}", std::process::id(), fsutil::random_suffix());
        let staging = layout::staging_root(store.root()).join(name);
        let out = staging.join(OUT_DIR);
        fs::create_dir_all(&out).map_err(CacheError::io("create staging directory", &out))?;
        Ok(Reservation {
            store: store.clone(),
            key: key.to_string(),
            staging,
            discarded,
            committed: false,
            _lock: lock,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The directory the stage writes its outputs into (empty at first).
    pub fn out_dir(&self) -> PathBuf {
        self.staging.join(OUT_DIR)
    }

    /// The staging dir (holds `out/`; `manifest.json` appears at commit).
    pub fn staging_dir(&self) -> &Path {
        &self.staging
    }

    /// A per-key directory that survives a crash of this process (for training checkpoints): a
    /// later reservation of the same key finds what was written here. Created on first call;
    /// deleted after a successful commit. Same path as [`layout::resume_dir`].
    pub fn resume_dir(&self) -> Result<PathBuf> {
        let dir = layout::resume_dir(self.store.root(), &self.key);
        fs::create_dir_all(&dir).map_err(CacheError::io("create resume directory", &dir))?;
        Ok(dir)
    }

    /// Delete the key's resume dir (a forced recompute starts afresh).
    pub(crate) fn clear_resume(&self) -> Result<()> {
        let dir = layout::resume_dir(self.store.root(), &self.key);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CacheError::Io {
                op: "remove",
                path: dir,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Set when a corrupt entry under this key was found and moved aside to make this reservation.
    pub fn discarded(&self) -> Option<&Defect> {
        self.discarded.as_ref()
    }

    /// Hash and fsync outputs, write the manifest, rename into `entries/`, release the lock.
    pub fn commit(mut self, info: CommitInfo) -> Result<Entry> {
        let manifest = self.seal(info)?;
        let entry_dir = layout::entry_dir(self.store.root(), &self.key);
        let shard = entry_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| layout::entries_dir(self.store.root()));
        fs::create_dir_all(&shard).map_err(CacheError::io("create directory", &shard))?;
        // Under the lock, an existing dir can only be an entry being replaced (`--force`).
        self.store.discard(&self.key)?;
        fs::rename(&self.staging, &entry_dir)
            .map_err(CacheError::io("rename into the store", &entry_dir))?;
        self.committed = true;
        fsutil::fsync_dir(&shard)?;
        fsutil::fsync_dir(&layout::entries_dir(self.store.root()))?;
        // The files were hashed by `seal` under this lock: later lookups trust them while unchanged.
        stamp::write(&manifest, &entry_dir);
        // The checkpoints of this key are no longer needed; a leftover is harmless (gc removes it).
        let _ = fs::remove_dir_all(layout::resume_dir(self.store.root(), &self.key));
        Ok(Entry::new(self.key.clone(), entry_dir, manifest))
    }

    /// Everything but the rename: hash + fsync files and dirs, write the manifest, fsync staging.
    fn seal(&self, info: CommitInfo) -> Result<Manifest> {
        let out = self.out_dir();
        let mut files = Vec::new();
        let mut dirs = vec![out.clone()];
        for node in fsutil::walk(&out)? {
            match node {
                Node::File(p) => {
                    let (size, blake3) = fsutil::hash_and_sync(&p)?;
                    let path = fsutil::rel_slash(&out, &p).ok_or_else(|| {
                        CacheError::UnsupportedOutput {
                            key: self.key.clone(),
                            path: p.clone(),
                        }
                    })?;
                    files.push(FileRecord { path, size, blake3 });
                }
                Node::Dir(p) => dirs.push(p),
                Node::Other(p) => {
                    return Err(CacheError::UnsupportedOutput {
                        key: self.key.clone(),
                        path: p,
                    });
                }
            }
        }
        for d in dirs.iter().rev() {
            fsutil::fsync_dir(d)?;
        }
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            key: self.key.clone(),
            stage: info.stage,
            kind: info.kind,
            pipeline: info.pipeline,
            created,
            size: files.iter().map(|f| f.size).sum(),
            files,
            meta: info.meta,
        };
        fsutil::write_new_synced(&self.staging.join(MANIFEST_FILE), &manifest.to_json()?)?;
        fsutil::fsync_dir(&self.staging)?;
        Ok(manifest)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}
