//! Where things live in the artifact store (DESIGN.md, "Cache"). The only place that knows the layout.
//!
//! ```text
//! $root/CACHEDIR.TAG
//! $root/v1/entries/<k0k1>/<key>/{manifest.json, out/...}
//! $root/v1/locks/<key>.lock
//! $root/v1/staging/<key>.<pid>.<rand>/
//! ```

use std::path::{Path, PathBuf};

/// Version directory of the layout; bump when the on-disk format changes.
pub const LAYOUT_VERSION: &str = "v1";

/// The cache root: `--cache-dir` (passed in), else `RORA_CACHE_DIR`, else the XDG cache dir + `rora`.
pub fn resolve_root(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("RORA_CACHE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(p).join("rora");
    }
    match dirs::cache_dir() {
        Some(d) => d.join("rora"),
        None => PathBuf::from(".rora-cache"),
    }
}

pub fn entries_dir(root: &Path) -> PathBuf {
    root.join(LAYOUT_VERSION).join("entries")
}

/// The committed entry for a key (hex blake3, 64 chars).
pub fn entry_dir(root: &Path, key_hex: &str) -> PathBuf {
    let shard = key_hex.get(..2).unwrap_or("xx");
    entries_dir(root).join(shard).join(key_hex)
}

/// An entry exists (is a hit) only when its manifest does.
pub fn manifest_path(root: &Path, key_hex: &str) -> PathBuf {
    entry_dir(root, key_hex).join("manifest.json")
}

pub fn out_dir(root: &Path, key_hex: &str) -> PathBuf {
    entry_dir(root, key_hex).join("out")
}

pub fn lock_path(root: &Path, key_hex: &str) -> PathBuf {
    root.join(LAYOUT_VERSION)
        .join("locks")
        .join(format!("{key_hex}.lock"))
}

pub fn staging_root(root: &Path) -> PathBuf {
    root.join(LAYOUT_VERSION).join("staging")
}

/// Read-only check used by `rora plan`: is there a committed entry for this key?
pub fn is_committed(root: &Path, key_hex: &str) -> bool {
    manifest_path(root, key_hex).is_file()
}

/// Where entries being discarded (corrupt, replaced by `--force`, collected by gc) are moved
/// before deletion, so a half-deleted entry is never visible under `entries/`.
pub fn trash_root(root: &Path) -> PathBuf {
    root.join(LAYOUT_VERSION).join("trash")
}

/// Event logs of `rora run`, one JSONL file per run.
pub fn runs_dir(root: &Path) -> PathBuf {
    root.join("runs")
}

/// The logs of the Slurm jobs of one run of the Slurm executor (`tag`: the run's tag).
pub fn slurm_logs_dir(root: &Path, tag: &str) -> PathBuf {
    runs_dir(root).join("slurm").join(tag)
}

/// The directory of the per-key lock files.
pub fn locks_root(root: &Path) -> PathBuf {
    root.join(LAYOUT_VERSION).join("locks")
}

/// Per-key scratch that survives a crash (training checkpoints), so a rerun of the same key can
/// resume. Used only under the key's lock; deleted when the key is committed.
pub fn resume_dir(root: &Path, key_hex: &str) -> PathBuf {
    resume_root(root).join(key_hex)
}

pub fn resume_root(root: &Path) -> PathBuf {
    root.join(LAYOUT_VERSION).join("resume")
}
