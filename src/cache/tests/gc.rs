use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, SystemTime};

use super::super::gc::{GcPolicy, GcReason, gc};
use super::super::{Lookup, Store};
use super::{key, put};

/// Three entries of 100, 200 and 300 bytes created "now"; ages are simulated by moving `now`.
fn three(store: &Store) -> [String; 3] {
    let ks = [key("g1"), key("g2"), key("g3")];
    for (i, k) in ks.iter().enumerate() {
        put(store, k, &"x".repeat(100 * (i + 1)));
    }
    ks
}

#[test]
fn gc_by_live_set_removes_only_unreferenced_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let [k1, k2, k3] = three(&store);
    let live: BTreeSet<String> = [k1.clone(), k3.clone()].into();
    let policy = GcPolicy {
        live: Some(live),
        ..Default::default()
    };
    let report = gc(&store, &policy, SystemTime::now()).unwrap();
    assert_eq!(report.removed.len(), 1);
    assert_eq!(
        (report.removed[0].key.as_str(), report.removed[0].reason),
        (k2.as_str(), GcReason::NotLive)
    );
    assert!(matches!(store.lookup(&k1).unwrap(), Lookup::Hit(_)));
    assert!(matches!(store.lookup(&k2).unwrap(), Lookup::Miss(_)));
}

#[test]
fn gc_by_age_and_dry_run() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    three(&store);
    let later = SystemTime::now() + Duration::from_secs(8 * 86400);
    let week = GcPolicy {
        older_than: Some(Duration::from_secs(7 * 86400)),
        dry_run: true,
        ..Default::default()
    };
    assert_eq!(gc(&store, &week, later).unwrap().removed.len(), 3);
    assert_eq!(
        super::super::inventory::list(&store).unwrap().len(),
        3,
        "dry run removes nothing"
    );
    let not_yet = GcPolicy {
        older_than: Some(Duration::from_secs(9 * 86400)),
        ..Default::default()
    };
    assert_eq!(gc(&store, &not_yet, later).unwrap().removed.len(), 0);
    let week = GcPolicy {
        dry_run: false,
        ..week
    };
    assert_eq!(gc(&store, &week, later).unwrap().removed.len(), 3);
    assert!(super::super::inventory::list(&store).unwrap().is_empty());
}

#[test]
fn gc_to_a_size_budget_removes_until_it_fits_and_always_removes_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let ks = three(&store);
    let infos = super::super::inventory::list(&store).unwrap();
    let total: u64 = infos.iter().map(|i| i.disk_size).sum();
    let biggest = infos.iter().map(|i| i.disk_size).max().unwrap();
    // g1 is used again, so g2 is now the least recently used.
    std::thread::sleep(Duration::from_millis(20));
    assert!(matches!(store.lookup(&ks[0]).unwrap(), Lookup::Hit(_)));
    // A budget just under the total: exactly the least recently used entry goes, no more.
    let policy = GcPolicy {
        max_size: Some(total - 1),
        ..Default::default()
    };
    let report = gc(&store, &policy, SystemTime::now()).unwrap();
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].key, ks[1]);
    assert!(report.kept_bytes < total && report.kept_bytes >= total - biggest);
    // A corrupt entry goes even with no other rule.
    let survivor = ks.iter().find(|k| **k != report.removed[0].key).unwrap();
    fs::write(
        tmp.path().join(format!(
            "v1/entries/{}/{survivor}/manifest.json",
            &survivor[..2]
        )),
        "not json",
    )
    .unwrap();
    let report = gc(&store, &GcPolicy::default(), SystemTime::now()).unwrap();
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].reason, GcReason::Corrupt);
    assert_eq!(report.kept, 1);
}

#[test]
fn gc_skips_a_key_whose_lock_is_held() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let k = key("busy");
    put(&store, &k, "data");
    let held = store.reserve(&k).unwrap();
    let policy = GcPolicy {
        live: Some(BTreeSet::new()),
        ..Default::default()
    };
    let report = gc(&store, &policy, SystemTime::now()).unwrap();
    assert_eq!(report.busy, vec![k.clone()]);
    assert!(report.removed.is_empty());
    drop(held);
}

#[test]
fn gc_removes_resume_dirs_of_committed_keys_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let (done, pending) = (key("done"), key("pending"));
    put(&store, &done, "x");
    for k in [&done, &pending] {
        let d = super::super::layout::resume_dir(tmp.path(), k);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("ckpt"), "c").unwrap();
    }
    let report = gc(&store, &GcPolicy::default(), SystemTime::now()).unwrap();
    assert_eq!(report.resume_removed, 1);
    assert!(!super::super::layout::resume_dir(tmp.path(), &done).exists());
    assert!(super::super::layout::resume_dir(tmp.path(), &pending).exists());
}
