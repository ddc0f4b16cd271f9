//! A committed entry: a directory `entries/<k0k1>/<key>/` with `manifest.json` and `out/`.
//! An `Entry` value is only handed out after its manifest parsed and its file sizes matched.

use std::path::{Path, PathBuf};

use super::manifest::{Manifest, OUT_DIR};

#[derive(Debug, Clone)]
pub struct Entry {
    key: String,
    dir: PathBuf,
    manifest: Manifest,
}

impl Entry {
    pub(crate) fn new(key: String, dir: PathBuf, manifest: Manifest) -> Entry {
        Entry { key, dir, manifest }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The entry directory (holding `manifest.json` and `out/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the stage's outputs are; read-only by convention.
    pub fn out_dir(&self) -> PathBuf {
        self.dir.join(OUT_DIR)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Path of one output, relative to `out/` with `/` separators.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.out_dir().join(rel)
    }
}
