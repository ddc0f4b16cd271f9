//! `cache gc`: remove entries by policy. Corrupt entries always go; then entries not in the live
//! set (if one is given), then entries older than a limit, then the least recently used until the
//! store fits a size budget. An entry whose key lock is held (being recomputed right now) is skipped.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::{CacheError, Result, validate_key};
use super::inventory::{self, EntryInfo};
use super::layout;
use super::lock::KeyLock;
use super::store::Store;

#[derive(Debug, Clone, Default)]
pub struct GcPolicy {
    /// Remove entries created longer ago than this.
    pub older_than: Option<Duration>,
    /// After the other rules, remove the oldest entries until the total is at most this many bytes.
    pub max_size: Option<u64>,
    /// Keys still referenced (by the pipelines the user named); all others are removed.
    pub live: Option<BTreeSet<String>>,
    /// Report what would be removed without removing it.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcReason {
    Corrupt,
    NotLive,
    TooOld,
    OverBudget,
}

impl GcReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GcReason::Corrupt => "corrupt",
            GcReason::NotLive => "not referenced",
            GcReason::TooOld => "too old",
            GcReason::OverBudget => "over size budget",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Removal {
    pub key: String,
    pub stage: String,
    pub bytes: u64,
    pub reason: GcReason,
}

#[derive(Debug, Clone, Default)]
pub struct GcReport {
    pub removed: Vec<Removal>,
    /// Keys skipped because another process holds their lock.
    pub busy: Vec<String>,
    pub kept: usize,
    pub kept_bytes: u64,
    /// Resume dirs (checkpoints of interrupted stages) removed.
    pub resume_removed: usize,
}

impl GcReport {
    pub fn freed(&self) -> u64 {
        self.removed.iter().map(|r| r.bytes).sum()
    }
}

/// Apply `policy` to the store at `now`.
pub fn gc(store: &Store, policy: &GcPolicy, now: SystemTime) -> Result<GcReport> {
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut report = GcReport::default();
    let mut keep: Vec<EntryInfo> = Vec::new();
    for info in inventory::list(store)? {
        match verdict(&info, policy, now_s) {
            Some(reason) => remove(store, info, reason, policy.dry_run, &mut report)?,
            None => keep.push(info),
        }
    }
    if let Some(budget) = policy.max_size {
        // Least recently used first; ties by key for a deterministic order.
        keep.sort_by_key(|i| (i.last_used.unwrap_or(UNIX_EPOCH), i.key.clone()));
        let mut total: u64 = keep.iter().map(|i| i.disk_size).sum();
        let mut survivors = Vec::new();
        for info in keep {
            if total > budget {
                total -= info.disk_size;
                remove(
                    store,
                    info,
                    GcReason::OverBudget,
                    policy.dry_run,
                    &mut report,
                )?;
            } else {
                survivors.push(info);
            }
        }
        keep = survivors;
    }
    report.kept = keep.len();
    report.kept_bytes = keep.iter().map(|i| i.disk_size).sum();
    report.resume_removed = gc_resume(store, policy, now)?;
    Ok(report)
}

/// Remove resume dirs nobody is using (key lock free) that are no longer useful: their key is
/// committed, not live, or they were last written longer ago than `older_than`.
fn gc_resume(store: &Store, policy: &GcPolicy, now: SystemTime) -> Result<usize> {
    let parent = layout::resume_root(store.root());
    if !parent.is_dir() {
        return Ok(0);
    }
    let mut removed = 0;
    for ent in std::fs::read_dir(&parent)
        .map_err(CacheError::io("list", &parent))?
        .flatten()
    {
        let key = ent.file_name().to_string_lossy().into_owned();
        if validate_key(&key).is_err() {
            continue;
        }
        let committed = layout::is_committed(store.root(), &key);
        let not_live = policy.live.as_ref().is_some_and(|l| !l.contains(&key));
        let age = ent
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok());
        let too_old = matches!((policy.older_than, age), (Some(limit), Some(age)) if age > limit);
        if !(committed || not_live || too_old) {
            continue;
        }
        let Some(_lock) = KeyLock::try_acquire(&layout::lock_path(store.root(), &key))? else {
            continue;
        };
        if policy.dry_run || std::fs::remove_dir_all(ent.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

fn verdict(info: &EntryInfo, policy: &GcPolicy, now_s: u64) -> Option<GcReason> {
    let Ok(m) = &info.manifest else {
        return Some(GcReason::Corrupt);
    };
    if policy
        .live
        .as_ref()
        .is_some_and(|live| !live.contains(&info.key))
    {
        return Some(GcReason::NotLive);
    }
    if policy
        .older_than
        .is_some_and(|age| now_s.saturating_sub(m.created) > age.as_secs())
    {
        return Some(GcReason::TooOld);
    }
    None
}

fn remove(
    store: &Store,
    info: EntryInfo,
    reason: GcReason,
    dry_run: bool,
    report: &mut GcReport,
) -> Result<()> {
    let removal = Removal {
        key: info.key.clone(),
        stage: info.stage().to_string(),
        bytes: info.disk_size,
        reason,
    };
    if !dry_run {
        let Some(_lock) = KeyLock::try_acquire(&layout::lock_path(store.root(), &info.key))? else {
            report.busy.push(info.key);
            return Ok(());
        };
        store.discard(&info.key)?;
    }
    report.removed.push(removal);
    Ok(())
}
