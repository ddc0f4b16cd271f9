//! Content digests of external inputs (model files, data files, eval files), blake3 over the bytes.
//! A file's digest is memoized by (absolute path, length, mtime); the memo can be persisted as JSON
//! (the CLI keeps it in the cache root) so a 16 GB model is hashed once, not on every `rora plan`.
//! A directory or glob digest is blake3 over the sorted (relative name, file digest) pairs, so moving
//! the data keeps the key and changing one byte changes it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("cannot read input {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("input pattern `{pattern}` is not a valid glob: {message}")]
    Pattern { pattern: String, message: String },
}

/// File digests memoized by path + length + modification time.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DigestMemo {
    /// Absolute path -> (length, mtime in ns, blake3 hex).
    entries: BTreeMap<String, (u64, u128, String)>,
    #[serde(skip)]
    dirty: bool,
    #[serde(skip)]
    hashed: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DigestError + '_ {
    move |source| DigestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl DigestMemo {
    pub fn new() -> Self {
        Self::default()
    }

    /// Load a persisted memo; a missing or unreadable file gives an empty memo.
    pub fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Persist the memo if it changed (write to a temporary file, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_vec(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, path)
    }

    /// How many files were actually read (not served from the memo) so far.
    pub fn files_hashed(&self) -> usize {
        self.hashed
    }

    /// blake3 of one file's bytes.
    pub fn file(&mut self, path: &Path) -> Result<String, DigestError> {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let meta = std::fs::metadata(&abs).map_err(io(&abs))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let key = abs.to_string_lossy().into_owned();
        if let Some((len, m, d)) = self.entries.get(&key)
            && *len == meta.len()
            && *m == mtime
        {
            return Ok(d.clone());
        }
        let mut f = std::fs::File::open(&abs).map_err(io(&abs))?;
        let mut h = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(io(&abs))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let d = h.finalize().to_hex().to_string();
        self.entries.insert(key, (meta.len(), mtime, d.clone()));
        self.dirty = true;
        self.hashed += 1;
        Ok(d)
    }

    /// Digest of a set of files named relative to `base` (sorted by name).
    pub fn files(&mut self, base: &Path, files: &[PathBuf]) -> Result<String, DigestError> {
        let mut named: Vec<(String, &PathBuf)> = files
            .iter()
            .map(|f| {
                (
                    f.strip_prefix(base)
                        .unwrap_or(f)
                        .to_string_lossy()
                        .into_owned(),
                    f,
                )
            })
            .collect();
        named.sort();
        let mut h = blake3::Hasher::new();
        for (name, f) in named {
            let d = self.file(f)?;
            h.update(name.as_bytes());
            h.update(&[0]);
            h.update(d.as_bytes());
            h.update(&[0]);
        }
        Ok(h.finalize().to_hex().to_string())
    }

    /// Digest of every file a glob matches (named relative to the glob's literal directory prefix).
    pub fn glob(&mut self, pattern: &str) -> Result<String, DigestError> {
        let paths = glob::glob(pattern).map_err(|e| DigestError::Pattern {
            pattern: pattern.into(),
            message: e.to_string(),
        })?;
        let files: Vec<PathBuf> = paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        let base = literal_prefix(pattern);
        self.files(&base, &files)
    }

    /// Digest of the regular files at the top of a directory that `keep` selects.
    pub fn dir(&mut self, dir: &Path, keep: impl Fn(&str) -> bool) -> Result<String, DigestError> {
        let mut files = vec![];
        for e in std::fs::read_dir(dir).map_err(io(dir))? {
            let e = e.map_err(io(dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_file() && keep(&name) {
                files.push(e.path());
            }
        }
        self.files(dir, &files)
    }
}

/// The directory part of a glob before its first wildcard.
fn literal_prefix(pattern: &str) -> PathBuf {
    let cut = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
    let lit = &pattern[..cut];
    match lit.rfind('/') {
        Some(i) => PathBuf::from(&lit[..=i]),
        None => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_follow_content_not_location_and_are_memoized() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [&a, &b] {
            std::fs::write(d.path().join("boolq.train.jsonl"), b"{\"id\":1}\n").unwrap();
            std::fs::write(d.path().join("piqa.train.jsonl"), b"{\"id\":2}\n").unwrap();
        }
        let mut m = DigestMemo::new();
        let da = m
            .glob(&format!("{}/*.train.jsonl", a.path().display()))
            .unwrap();
        let db = m
            .glob(&format!("{}/*.train.jsonl", b.path().display()))
            .unwrap();
        assert_eq!(da, db);
        assert_eq!(m.files_hashed(), 4);
        let again = m
            .glob(&format!("{}/*.train.jsonl", a.path().display()))
            .unwrap();
        assert_eq!((again, m.files_hashed()), (da.clone(), 4));
        std::fs::write(b.path().join("piqa.train.jsonl"), b"{\"id\":3}\n").unwrap();
        assert_ne!(
            m.glob(&format!("{}/*.train.jsonl", b.path().display()))
                .unwrap(),
            da
        );
        // blake3 of the empty input (reference: the blake3 spec's test vectors).
        std::fs::write(a.path().join("empty"), b"").unwrap();
        assert_eq!(
            m.file(&a.path().join("empty")).unwrap(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        let memo = a.path().join("memo.json");
        m.save(&memo).unwrap();
        assert_eq!(DigestMemo::load(&memo).entries.len(), m.entries.len());
    }
}
