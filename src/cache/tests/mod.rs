//! Tests of the store. `process.rs` spawns this test binary as a child to get a second process
//! (concurrent commits, SIGKILL mid-stage, dropped privileges, a file size limit).

mod explain;
mod gc;
mod process;
mod store;

use std::path::Path;

use super::{CommitInfo, Entry, Lookup, Store};

/// A 64-hex key derived from a label, like the planner's keys.
pub(super) fn key(label: &str) -> String {
    blake3::hash(label.as_bytes()).to_hex().to_string()
}

pub(super) fn info(stage: &str) -> CommitInfo {
    CommitInfo {
        stage: stage.to_string(),
        kind: "fake".to_string(),
        pipeline: Some("pipelines/t.kdl".to_string()),
        meta: serde_json::json!({ "components": { "rank": 8, "alpha": 16 } }),
    }
}

/// Compute `key` with one output file `a.txt` = `body` if missing; returns the entry.
pub(super) fn put(store: &Store, key: &str, body: &str) -> Entry {
    match store.lookup(key).unwrap() {
        Lookup::Hit(e) => e,
        Lookup::Miss(r) => {
            std::fs::write(r.out_dir().join("a.txt"), body).unwrap();
            r.commit(info("s")).unwrap()
        }
    }
}

pub(super) fn count_dir(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|rd| rd.count()).unwrap_or(0)
}
