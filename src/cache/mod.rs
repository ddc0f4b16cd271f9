//! The content-addressed artifact store (DESIGN.md, "Cache").
//!
//! ```text
//! Store::open(root) -> lookup(key) -> Hit(Entry)                      (manifest parsed, sizes match)
//!                                  -> Miss(Reservation)               (key locked, empty staging out_dir)
//!                                        -> commit(info) -> Entry     (hash, fsync, manifest last, rename)
//!                                        -> drop                      (staging removed, lock released)
//! ```
//! Guarantees: an entry under `entries/` is complete (it appeared by one rename after its manifest
//! was written and everything was fsynced); a corrupt entry is never returned as a hit; one key is
//! computed by one holder at a time across threads and processes; a crashed holder leaves only a
//! staging dir, removed by the next `Store::open`.
//!
//! Hits are checked against the manifest's hashes, not only its sizes: an entry is re-hashed
//! unless its [`stamp`] shows every file untouched since it last matched, so an entry corrupted or
//! truncated in place is moved aside and recomputed, never used (`cache verify` re-hashes all).
//!
//! Keys of hub sources: the store only sees keys; the planner makes them. A `hub` model or data
//! source is resolved to a commit sha when the plan is made (`plan::plan_with` with a
//! [`crate::hub::LazyHub`]; offline through the HF cache's `refs/`), the commit goes into the key
//! instead of the branch name, and the runner downloads that commit. So a branch moved on the hub
//! is a miss for that stage and everything after it, the same commit is a hit, and a key never
//! names weights other than the ones its entry holds. Resolution happens before any lookup, in the
//! planner rather than the executor, so `plan`, `explain` and `gc --pipeline` see the same keys as
//! `run`. `run` and `gc` stop when a revision cannot be resolved; `plan`, `explain` and
//! `show-output` then warn and key that source by its revision name.
//!
//! Write errors: ENOSPC / EDQUOT / EFBIG become [`CacheError::NoSpace`] ("disk full / file too
//! large"), other I/O errors [`CacheError::Io`]; both name the operation and the path, and leave no
//! entry for the key (the reservation's staging dir is removed).

pub mod entry;
pub mod error;
pub mod explain;
pub mod fsutil;
pub mod gc;
pub mod inventory;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod reservation;
pub mod stale;
pub mod stamp;
pub mod store;
pub mod verify;

pub use entry::Entry;
pub use error::{CacheError, Result};
pub use gc::{GcPolicy, GcReport};
pub use manifest::{CommitInfo, Defect, Manifest};
pub use reservation::Reservation;
pub use store::{Lookup, Probe, Store};

#[cfg(test)]
mod tests;
