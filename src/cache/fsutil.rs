//! Small filesystem helpers of the store: durable writes, directory fsync, file hashing and a
//! deterministic walk of an output tree. Nothing here knows the cache layout.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::{CacheError, Result};

/// fsync a directory so that renames and creations inside it survive a power cut.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    crate::fsx::fsync_dir(dir).map_err(CacheError::io("fsync directory", dir))
}

/// Create `path`, write `bytes`, fsync it. Fails if the file exists (`create_new`).
pub fn write_new_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fsx::write_new_synced(path, bytes).map_err(CacheError::io("write", path))
}

/// Write `bytes` to `path` atomically ([`crate::fsx::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fsx::write_atomic(path, bytes).map_err(CacheError::io("write atomically", path))
}

/// blake3 of a file's bytes, with its length; fsyncs the file (it is about to become an entry).
pub fn hash_and_sync(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(CacheError::io("open", path))?;
    let (len, hex) = hash_reader(&mut f).map_err(CacheError::io("read", path))?;
    f.sync_all().map_err(CacheError::io("fsync", path))?;
    Ok((len, hex))
}

/// blake3 of a file's bytes, with its length.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(CacheError::io("open", path))?;
    hash_reader(&mut f).map_err(CacheError::io("read", path))
}

fn hash_reader(r: &mut impl Read) -> std::io::Result<(u64, String)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hasher.finalize().to_hex().to_string()))
}

/// One item of an output tree.
pub enum Node {
    File(PathBuf),
    Dir(PathBuf),
    /// Anything else (symlink, socket, fifo): the store refuses it.
    Other(PathBuf),
}

/// Every node under `root` (not `root` itself), files and dirs, sorted by path, symlinks not followed.
pub fn walk(root: &Path) -> Result<Vec<Node>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = fs::read_dir(&dir).map_err(CacheError::io("list", &dir))?;
        for ent in rd {
            let ent = ent.map_err(CacheError::io("list", &dir))?;
            let path = ent.path();
            let ty = ent.file_type().map_err(CacheError::io("stat", &path))?;
            if ty.is_dir() {
                stack.push(path.clone());
                out.push(Node::Dir(path));
            } else if ty.is_file() {
                out.push(Node::File(path));
            } else {
                out.push(Node::Other(path));
            }
        }
    }
    out.sort_by(|a, b| node_path(a).cmp(node_path(b)));
    Ok(out)
}

pub fn node_path(n: &Node) -> &Path {
    match n {
        Node::File(p) | Node::Dir(p) | Node::Other(p) => p,
    }
}

/// Total size of regular files under `dir` (0 if it does not exist); for `ls` and `gc`.
pub fn tree_size(dir: &Path) -> u64 {
    match walk(dir) {
        Ok(nodes) => nodes
            .iter()
            .filter_map(|n| match n {
                Node::File(p) => fs::metadata(p).ok().map(|m| m.len()),
                _ => None,
            })
            .sum(),
        Err(_) => 0,
    }
}

/// 64 random bits in hex, for staging and trash names.
pub fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A relative path with `/` separators, as stored in manifests.
pub fn rel_slash(base: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(base).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}
