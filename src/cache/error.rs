//! Errors of the artifact store. Every variant names the path (and, where there is one, the key)
//! it is about, so a user can find the file without a backtrace.

use std::path::PathBuf;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A filesystem operation failed (permission denied, disk full, ...).
    #[error("cache: cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A write failed because the filesystem is full, a quota is reached, or the file would exceed
    /// the process's file size limit (ENOSPC, EDQUOT, EFBIG). Nothing partial is left as an entry.
    #[error(
        "cache: disk full / file too large: cannot {op} {}: {source} (free space in the cache or point RORA_CACHE_DIR elsewhere)",
        path.display()
    )]
    NoSpace {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A key that is not lowercase hex of a plausible length.
    #[error("cache: invalid key {key:?}: expected 16 to 128 lowercase hex digits")]
    InvalidKey { key: String },
    /// The stage wrote something into its output dir that the store cannot hash (a symlink, a socket, ...).
    #[error("cache: output {} of key {key} is not a regular file or directory", path.display())]
    UnsupportedOutput { key: String, path: PathBuf },
    /// A manifest could not be serialized.
    #[error("cache: cannot encode the manifest of key {key}: {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl CacheError {
    /// Wrap an `io::Error` with the operation and the path it was about (a full disk or an
    /// exceeded file size limit becomes [`CacheError::NoSpace`]).
    pub fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> CacheError {
        let path = path.into();
        move |source| {
            if is_no_space(&source) {
                CacheError::NoSpace { op, path, source }
            } else {
                CacheError::Io { op, path, source }
            }
        }
    }
}

/// ENOSPC (disk full), EDQUOT (quota) or EFBIG (file size limit, e.g. RLIMIT_FSIZE).
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == libc::ENOSPC || c == libc::EDQUOT || c == libc::EFBIG)
}

pub type Result<T, E = CacheError> = std::result::Result<T, E>;

/// Reject keys that could escape the layout (`..`, `/`) or are obviously not digests.
pub fn validate_key(key: &str) -> Result<()> {
    let ok = (16..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CacheError::InvalidKey {
            key: key.to_string(),
        })
    }
}
