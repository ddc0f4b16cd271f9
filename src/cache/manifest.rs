//! `manifest.json`: what an entry holds. It is written last into the staging dir, so an entry
//! with a readable manifest whose files match it is complete. Two levels of checking:
//! [`Manifest::check_sizes`] (cheap, used by every lookup) and [`Manifest::check_hashes`] (re-hash,
//! used by `cache verify`).

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{CacheError, Result};
use super::fsutil;

/// Bumped when the manifest's meaning changes.
pub const MANIFEST_FORMAT: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";
pub const OUT_DIR: &str = "out";

/// What the caller says about an entry when committing it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CommitInfo {
    /// Stage name with its sweep point, e.g. `ft@rank=8,method=rora`.
    pub stage: String,
    /// Stage kind, e.g. `train`.
    pub kind: String,
    /// The pipeline file that produced it, if any.
    pub pipeline: Option<String>,
    /// Free JSON from the runner; by convention includes the key components.
    pub meta: serde_json::Value,
}

/// One output file: path relative to `out/`, with `/` separators.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    pub path: String,
    pub size: u64,
    pub blake3: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub key: String,
    pub stage: String,
    pub kind: String,
    pub pipeline: Option<String>,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Sum of file sizes.
    pub size: u64,
    /// Sorted by path.
    pub files: Vec<FileRecord>,
    pub meta: serde_json::Value,
}

/// Why an entry cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    ManifestUnreadable(String),
    KeyMismatch {
        found: String,
    },
    Missing(String),
    SizeMismatch {
        path: String,
        expected: u64,
        found: u64,
    },
    HashMismatch {
        path: String,
    },
    Unreadable {
        path: String,
        reason: String,
    },
}

impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Defect::ManifestUnreadable(why) => write!(f, "manifest unreadable: {why}"),
            Defect::KeyMismatch { found } => write!(f, "manifest names another key {found}"),
            Defect::Missing(p) => write!(f, "file out/{p} is missing"),
            Defect::SizeMismatch {
                path,
                expected,
                found,
            } => {
                write!(
                    f,
                    "file out/{path} has {found} bytes, manifest says {expected}"
                )
            }
            Defect::HashMismatch { path } => {
                write!(f, "file out/{path} does not match its blake3 hash")
            }
            Defect::Unreadable { path, reason } => {
                write!(f, "file out/{path} cannot be read: {reason}")
            }
        }
    }
}

/// `a/b.txt`: relative, `/`-separated, no empty, `.` or `..` component.
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'))
}

impl Manifest {
    /// Read and parse the manifest of the entry in `entry_dir`, checking that it names `key`.
    pub fn load(entry_dir: &Path, key: &str) -> std::result::Result<Manifest, Defect> {
        let path = entry_dir.join(MANIFEST_FILE);
        let bytes = fs::read(&path).map_err(|e| Defect::ManifestUnreadable(e.to_string()))?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Defect::ManifestUnreadable(e.to_string()))?;
        if m.format != MANIFEST_FORMAT {
            return Err(Defect::ManifestUnreadable(format!(
                "unknown format {}",
                m.format
            )));
        }
        if m.key != key {
            return Err(Defect::KeyMismatch { found: m.key });
        }
        // Paths come from disk: never let one point outside `out/`.
        if let Some(f) = m.files.iter().find(|f| !is_plain_relative(&f.path)) {
            return Err(Defect::ManifestUnreadable(format!(
                "file path {:?} leaves out/",
                f.path
            )));
        }
        Ok(m)
    }

    /// Every file exists with the recorded size. Cheap: one `stat` per file.
    pub fn check_sizes(&self, entry_dir: &Path) -> std::result::Result<(), Defect> {
        let out = entry_dir.join(OUT_DIR);
        for f in &self.files {
            let meta =
                fs::metadata(out.join(&f.path)).map_err(|_| Defect::Missing(f.path.clone()))?;
            if !meta.is_file() {
                return Err(Defect::Missing(f.path.clone()));
            }
            if meta.len() != f.size {
                return Err(Defect::SizeMismatch {
                    path: f.path.clone(),
                    expected: f.size,
                    found: meta.len(),
                });
            }
        }
        Ok(())
    }

    /// Sizes, then re-hash every file.
    pub fn check_hashes(&self, entry_dir: &Path) -> std::result::Result<(), Defect> {
        self.check_sizes(entry_dir)?;
        let out = entry_dir.join(OUT_DIR);
        for f in &self.files {
            let (_, hex) =
                fsutil::hash_file(&out.join(&f.path)).map_err(|e| Defect::Unreadable {
                    path: f.path.clone(),
                    reason: e.to_string(),
                })?;
            if hex != f.blake3 {
                return Err(Defect::HashMismatch {
                    path: f.path.clone(),
                });
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|source| CacheError::Encode {
            key: self.key.clone(),
            source,
        })
    }
}
