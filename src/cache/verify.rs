//! `cache verify`: re-hash every entry's outputs against its manifest.

use super::error::Result;
use super::inventory;
use super::manifest::Defect;
use super::store::Store;

/// The verdict on one entry.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub key: String,
    pub stage: String,
    pub result: std::result::Result<(), Defect>,
}

/// Re-hash every entry. Nothing is changed; a corrupt entry is recomputed by the next `run`
/// (its `lookup` moves it aside) or removed by `gc`.
pub fn verify(store: &Store) -> Result<Vec<Verdict>> {
    let mut out = Vec::new();
    for info in inventory::list(store)? {
        let result = match &info.manifest {
            Ok(m) => m.check_hashes(&info.dir),
            Err(d) => Err(d.clone()),
        };
        out.push(Verdict {
            key: info.key.clone(),
            stage: info.stage().to_string(),
            result,
        });
    }
    Ok(out)
}
