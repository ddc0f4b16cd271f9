//! Why a key is (not) cached: find the committed entry of the same stage whose recorded key
//! components are nearest to a job's, and list the components that differ (`rora explain`).
//!
//! Convention (kept by the executor): a manifest's `meta.fingerprint` holds the JSON of the key
//! components the key was derived from. Entries without one are ignored.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::Result;
use super::inventory::{self, EntryInfo};
use super::store::Store;

/// One key component that differs, by dotted path (`params.rank`, `upstream.model.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    /// In the stored entry (`None`: absent there).
    pub stored: Option<String>,
    /// In the job being explained (`None`: absent now).
    pub now: Option<String>,
}

/// The nearest stored entry and how it differs.
#[derive(Debug, Clone)]
pub struct Nearest {
    pub entry: EntryInfo,
    pub changes: Vec<Change>,
}

/// Among entries whose manifest stage is `stage_label` or starts with `stage@` (other points of the
/// same stage), the one whose `meta.fingerprint` differs from `fingerprint` in the fewest
/// components (newest on ties).
pub fn nearest(store: &Store, stage: &str, fingerprint: &Value) -> Result<Option<Nearest>> {
    let now = flatten(fingerprint);
    let prefix = format!("{stage}@");
    let mut best: Option<Nearest> = None;
    for entry in inventory::list(store)? {
        let Ok(m) = &entry.manifest else { continue };
        if m.stage != stage && !m.stage.starts_with(&prefix) {
            continue;
        }
        let Some(stored_fp) = m.meta.get("fingerprint") else {
            continue;
        };
        let changes = diff(&flatten(stored_fp), &now);
        let better = match &best {
            None => true,
            Some(b) => {
                (changes.len(), std::cmp::Reverse(m.created))
                    < (
                        b.changes.len(),
                        std::cmp::Reverse(b.entry.created().unwrap_or(0)),
                    )
            }
        };
        if better {
            best = Some(Nearest { entry, changes });
        }
    }
    Ok(best)
}

/// Leaves of a JSON value by dotted path; scalars rendered as JSON text.
pub fn flatten(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(v, String::new(), &mut out);
    out
}

fn walk(v: &Value, path: String, out: &mut BTreeMap<String, String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                walk(child, join(k), out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, child) in items.iter().enumerate() {
                walk(child, join(&i.to_string()), out);
            }
        }
        leaf => {
            out.insert(path, leaf.to_string());
        }
    }
}

/// Components that differ between two flattened fingerprints, sorted by path.
pub fn diff(stored: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<Change> {
    let mut paths: Vec<&String> = stored.keys().chain(now.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| stored.get(*p) != now.get(*p))
        .map(|p| Change {
            path: p.clone(),
            stored: stored.get(p).cloned(),
            now: now.get(p).cloned(),
        })
        .collect()
}
