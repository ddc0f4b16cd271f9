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
    /// Wrap an `io::Error` with the operation and the path it was about.
    pub fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> CacheError {
        let path = path.into();
        move |source| CacheError::Io { op, path, source }
    }
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
