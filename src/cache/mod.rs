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
