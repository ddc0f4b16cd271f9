//! The store: open a cache root, look keys up, hand out reservations.
//!
//! Guarantees:
//! - `lookup` returns `Hit` only for an entry whose manifest parses, names the key, and whose files
//!   have the recorded sizes and hashes (re-hashed unless the entry's [`stamp`](super::stamp) shows
//!   the files untouched since they were last hashed); anything else under that key is moved aside
//!   (never used) and the caller gets a `Miss`. `probe` (for `plan`, `explain`) checks sizes only.
//! - A `Miss` carries the key's exclusive lock: of several threads or processes asking for the same
//!   missing key, one gets the `Miss`; the others wait and then see its `Hit` (or, if it failed,
//!   the next one gets the `Miss`).

use std::fs;
use std::path::{Path, PathBuf};

use super::entry::Entry;
use super::error::{CacheError, Result, validate_key};
use super::fsutil;
use super::layout;
use super::lock::KeyLock;
use super::manifest::{Defect, Manifest};
use super::reservation::Reservation;
use super::stamp;

/// The standard signature (https://bford.info/cachedir/) that backup tools look for.
pub const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by rora.\n\
# For information about cache directory tags, see https://bford.info/cachedir/\n";

/// The answer of [`Store::lookup`].
#[must_use = "a Miss holds the key's lock until it is committed or dropped"]
#[derive(Debug)]
pub enum Lookup {
    Hit(Entry),
    Miss(Reservation),
}

/// State of a key on disk, without locking.
#[derive(Debug)]
pub enum Probe {
    Absent,
    Valid(Entry),
    Corrupt(Defect),
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open (creating if needed) the store at `root`: `CACHEDIR.TAG` and the `v1/` directories.
    /// Then removes staging dirs left by dead processes (best effort).
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for dir in [
            layout::entries_dir(&root),
            layout::staging_root(&root),
            layout::trash_root(&root),
            layout::locks_root(&root),
        ] {
            fs::create_dir_all(&dir).map_err(CacheError::io("create directory", &dir))?;
        }
        let tag = root.join("CACHEDIR.TAG");
        if !tag.is_file() {
            fsutil::write_atomic(&tag, CACHEDIR_TAG.as_bytes())?;
        }
        let store = Store { root };
        let _ = super::stale::clean(&store);
        Ok(store)
    }

    /// A store for read-only commands (`ls`, `verify`, `plan`): creates nothing; a missing root
    /// reads as an empty store.
    pub fn open_read_only(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Hit, or a reservation holding the key's lock. Blocks while another holder computes the key.
    pub fn lookup(&self, key: &str) -> Result<Lookup> {
        self.lookup_with(key, &mut || {})
    }

    /// As [`Store::lookup`]; `on_wait` is called once if another holder has the key's lock.
    pub fn lookup_with(&self, key: &str, on_wait: &mut dyn FnMut()) -> Result<Lookup> {
        validate_key(key)?;
        // Fast path: entries appear by an atomic rename, so a valid one needs no lock.
        if let Probe::Valid(entry) = self.probe_deep(key)? {
            return Ok(Lookup::Hit(touch(entry)));
        }
        let lock = KeyLock::acquire(&layout::lock_path(&self.root, key), on_wait)?;
        self.locked_lookup(key, lock)
    }

    /// As [`Store::lookup`] without waiting: `None` when another holder (a thread or process)
    /// has the key's lock, so the caller can do other work and ask again.
    pub fn try_lookup(&self, key: &str) -> Result<Option<Lookup>> {
        validate_key(key)?;
        if let Probe::Valid(entry) = self.probe_deep(key)? {
            return Ok(Some(Lookup::Hit(touch(entry))));
        }
        match KeyLock::try_acquire(&layout::lock_path(&self.root, key))? {
            Some(lock) => self.locked_lookup(key, lock).map(Some),
            None => Ok(None),
        }
    }

    /// Whether another holder (a thread or process, here or on another node of a shared store)
    /// has the key's lock right now. Takes and drops the lock when it is free.
    pub fn held_elsewhere(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        Ok(KeyLock::try_acquire(&layout::lock_path(&self.root, key))?.is_none())
    }

    /// The lookup once the key's lock is held: the entry if another holder committed it
    /// meanwhile, else a reservation (a corrupt entry moved aside first).
    fn locked_lookup(&self, key: &str, lock: KeyLock) -> Result<Lookup> {
        match self.probe_deep(key)? {
            Probe::Valid(entry) => Ok(Lookup::Hit(touch(entry))),
            Probe::Absent => Ok(Lookup::Miss(Reservation::create(self, key, lock, None)?)),
            Probe::Corrupt(defect) => {
                self.discard(key)?;
                Ok(Lookup::Miss(Reservation::create(
                    self,
                    key,
                    lock,
                    Some(defect),
                )?))
            }
        }
    }

    /// A reservation even if the key is cached (`--force`): the old entry is replaced on commit,
    /// and the key's resume dir is cleared so the computation starts afresh.
    pub fn reserve(&self, key: &str) -> Result<Reservation> {
        validate_key(key)?;
        let lock = KeyLock::acquire(&layout::lock_path(&self.root, key), &mut || {})?;
        let defect = match self.probe(key)? {
            Probe::Corrupt(d) => {
                self.discard(key)?;
                Some(d)
            }
            _ => None,
        };
        let reservation = Reservation::create(self, key, lock, defect)?;
        reservation.clear_resume()?;
        Ok(reservation)
    }

    /// The state of a key without locking or changing anything (`plan`, `explain`, `show-output`).
    pub fn probe(&self, key: &str) -> Result<Probe> {
        validate_key(key)?;
        let dir = layout::entry_dir(&self.root, key);
        match fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Probe::Absent),
            Err(e) => {
                return Err(CacheError::Io {
                    op: "stat",
                    path: dir,
                    source: e,
                });
            }
            Ok(_) => {}
        }
        let checked = Manifest::load(&dir, key).and_then(|m| m.check_sizes(&dir).map(|()| m));
        Ok(match checked {
            Ok(m) => Probe::Valid(Entry::new(key.to_string(), dir, m)),
            Err(d) => Probe::Corrupt(d),
        })
    }

    /// [`Store::probe`], then the hashes: re-hashed unless the entry's stamp shows its files
    /// untouched since they last matched (see [`super::stamp`]); a match renews the stamp.
    pub fn probe_deep(&self, key: &str) -> Result<Probe> {
        Ok(match self.probe(key)? {
            Probe::Valid(entry) => {
                let m = entry.manifest();
                if stamp::is_fresh(m, entry.dir()) {
                    Probe::Valid(entry)
                } else {
                    match m.check_hashes(entry.dir()) {
                        Ok(()) => {
                            stamp::write(m, entry.dir());
                            Probe::Valid(entry)
                        }
                        Err(d) => Probe::Corrupt(d),
                    }
                }
            }
            other => other,
        })
    }

    /// Move a key's entry dir into the trash and delete it. Callers hold the key's lock.
    pub(crate) fn discard(&self, key: &str) -> Result<()> {
        let dir = layout::entry_dir(&self.root, key);
        if !dir.exists() {
            return Ok(());
        }
        let trash = layout::trash_root(&self.root);
        fs::create_dir_all(&trash).map_err(CacheError::io("create directory", &trash))?;
        let target = trash.join(format!(
            "{key}.{}.{}",
            std::process::id(),
            fsutil::random_suffix()
        ));
        fs::rename(&dir, &target).map_err(CacheError::io("move aside", &dir))?;
        if let Some(shard) = dir.parent() {
            fsutil::fsync_dir(shard)?;
        }
        let _ = fs::remove_dir_all(&target);
        Ok(())
    }
}

/// Record a use: the entry dir's mtime is its last-used time, which `gc --max-size` evicts by.
/// Best effort (a read-only store still serves hits).
fn touch(entry: Entry) -> Entry {
    if let Ok(dir) = fs::File::open(entry.dir()) {
        let _ = dir.set_modified(std::time::SystemTime::now());
    }
    entry
}
