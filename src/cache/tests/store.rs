use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::super::manifest::Defect;
use super::super::{CacheError, Lookup, Probe, Store, layout, verify};
use super::{count_dir, info, key, put};

#[test]
fn commit_then_lookup_round_trips_files_hashes_and_meta() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let tag = fs::read_to_string(tmp.path().join("CACHEDIR.TAG")).unwrap();
    assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"));

    let k = key("round-trip");
    let Lookup::Miss(r) = store.lookup(&k).unwrap() else {
        panic!("fresh store must miss")
    };
    assert_eq!(count_dir(&r.out_dir()), 0);
    fs::create_dir_all(r.out_dir().join("sub/deep")).unwrap();
    fs::write(r.out_dir().join("b.bin"), b"hello").unwrap();
    fs::write(r.out_dir().join("sub/deep/c.json"), b"{}").unwrap();
    let staging = r.staging_dir().to_path_buf();
    let committed = r.commit(info("ft@rank=8")).unwrap();
    assert!(!staging.exists(), "staging dir is renamed away on commit");

    let Lookup::Hit(e) = store.lookup(&k).unwrap() else {
        panic!("committed key must hit")
    };
    assert_eq!(e.dir(), committed.dir());
    assert_eq!(e.dir(), layout::entry_dir(tmp.path(), &k));
    let m = e.manifest();
    assert_eq!(
        (m.key.as_str(), m.stage.as_str(), m.kind.as_str()),
        (k.as_str(), "ft@rank=8", "fake")
    );
    assert_eq!(m.pipeline.as_deref(), Some("pipelines/t.kdl"));
    assert_eq!(m.meta["components"]["alpha"], 16);
    let files: Vec<(&str, u64)> = m.files.iter().map(|f| (f.path.as_str(), f.size)).collect();
    assert_eq!(files, vec![("b.bin", 5), ("sub/deep/c.json", 2)]);
    // Reference: blake3 of the bytes, computed independently with the blake3 crate.
    assert_eq!(
        m.files[0].blake3,
        blake3::hash(b"hello").to_hex().to_string()
    );
    assert_eq!(m.size, 7);
    assert_eq!(fs::read(e.file("sub/deep/c.json")).unwrap(), b"{}");
    assert!(
        verify::verify(&store)
            .unwrap()
            .iter()
            .all(|v| v.result.is_ok())
    );
}

#[test]
fn dropping_a_reservation_leaves_no_entry_and_no_staging() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let k = key("dropped");
    let Lookup::Miss(r) = store.lookup(&k).unwrap() else {
        panic!()
    };
    fs::write(r.out_dir().join("half.bin"), b"partial").unwrap();
    drop(r);
    assert_eq!(count_dir(&layout::staging_root(tmp.path())), 0);
    assert!(matches!(store.probe(&k).unwrap(), Probe::Absent));
    // The lock was released: the key can be reserved again at once.
    assert!(matches!(store.lookup(&k).unwrap(), Lookup::Miss(_)));
}

#[test]
fn threads_racing_for_one_key_compute_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let k = key("race");
    let computed = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (store, k, computed, barrier) =
                (store.clone(), k.clone(), computed.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                match store.lookup(&k).unwrap() {
                    Lookup::Hit(e) => fs::read_to_string(e.file("a.txt")).unwrap(),
                    Lookup::Miss(r) => {
                        computed.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                        fs::write(r.out_dir().join("a.txt"), format!("by {i}")).unwrap();
                        let e = r.commit(info("s")).unwrap();
                        fs::read_to_string(e.file("a.txt")).unwrap()
                    }
                }
            })
        })
        .collect();
    let bodies: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "all threads see the one result: {bodies:?}"
    );
}

#[test]
fn truncated_file_is_a_miss_and_is_moved_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let k = key("truncated");
    let e = put(&store, &k, "0123456789");
    fs::write(e.file("a.txt"), "01234").unwrap();
    let verdicts = verify::verify(&store).unwrap();
    assert_eq!(
        verdicts[0].result,
        Err(Defect::SizeMismatch {
            path: "a.txt".into(),
            expected: 10,
            found: 5
        })
    );
    let Lookup::Miss(r) = store.lookup(&k).unwrap() else {
        panic!("a truncated entry must not hit")
    };
    assert!(matches!(r.discarded(), Some(Defect::SizeMismatch { .. })));
    assert!(
        !layout::entry_dir(tmp.path(), &k).exists(),
        "the corrupt entry was moved aside"
    );
    fs::write(r.out_dir().join("a.txt"), "0123456789").unwrap();
    r.commit(info("s")).unwrap();
    assert!(verify::verify(&store).unwrap()[0].result.is_ok());
}

#[test]
fn same_size_corruption_is_found_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let k = key("flipped");
    let e = put(&store, &k, "abcdef");
    fs::write(e.file("a.txt"), "abcdeX").unwrap();
    let v = verify::verify(&store).unwrap();
    assert_eq!(
        v[0].result,
        Err(Defect::HashMismatch {
            path: "a.txt".into()
        })
    );
}

#[test]
fn same_size_corruption_is_a_miss_for_lookup_too() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let k = key("flipped-lookup");
    let e = put(&store, &k, "abcdef");
    // Committing stamped the entry (if the file changed in the same clock tick as the stamp, the
    // first lookup re-hashes and stamps again): an untouched entry then hits without re-hashing.
    std::thread::sleep(Duration::from_millis(30));
    assert!(matches!(store.lookup(&k).unwrap(), Lookup::Hit(_)));
    assert!(super::super::stamp::is_fresh(e.manifest(), e.dir()));
    assert!(matches!(store.lookup(&k).unwrap(), Lookup::Hit(_)));
    // Same length, other bytes: the write changed the file's ctime, so lookup re-hashes.
    fs::write(e.file("a.txt"), "abcdeX").unwrap();
    assert!(!super::super::stamp::is_fresh(e.manifest(), e.dir()));
    assert!(
        matches!(store.probe(&k).unwrap(), Probe::Valid(_)),
        "sizes alone do not see it"
    );
    let Lookup::Miss(r) = store.lookup(&k).unwrap() else {
        panic!("a corrupt entry must not hit")
    };
    assert_eq!(
        r.discarded(),
        Some(&Defect::HashMismatch {
            path: "a.txt".into()
        })
    );
    drop(r);
    assert!(matches!(store.probe(&k).unwrap(), Probe::Absent));
}

#[test]
fn a_lost_stamp_costs_a_rehash_and_is_renewed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let k = key("unstamped");
    let e = put(&store, &k, "abcdef");
    fs::remove_file(e.dir().join(super::super::stamp::STAMP_FILE)).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    assert!(!super::super::stamp::is_fresh(e.manifest(), e.dir()));
    assert!(matches!(store.lookup(&k).unwrap(), Lookup::Hit(_)));
    assert!(super::super::stamp::is_fresh(e.manifest(), e.dir()));
}

#[test]
fn missing_or_garbage_manifest_or_missing_file_is_a_miss() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    type Damage = fn(&super::super::Entry);
    let cases: [(&str, Damage); 3] = [
        ("no-manifest", |e| {
            fs::remove_file(e.dir().join("manifest.json")).unwrap()
        }),
        ("garbage-manifest", |e| {
            fs::write(e.dir().join("manifest.json"), "{\"format\": 1, \"ke").unwrap()
        }),
        ("missing-file", |e| {
            fs::remove_file(e.file("a.txt")).unwrap()
        }),
    ];
    for (label, damage) in cases {
        let k = key(label);
        damage(&put(&store, &k, "payload"));
        assert!(
            verify::verify(&store)
                .unwrap()
                .iter()
                .any(|v| v.key == k && v.result.is_err()),
            "{label}"
        );
        match store.lookup(&k).unwrap() {
            Lookup::Hit(_) => panic!("{label}: a damaged entry must not hit"),
            Lookup::Miss(r) => assert!(r.discarded().is_some(), "{label}"),
        }
    }
}

#[test]
fn force_reservation_replaces_a_valid_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let k = key("forced");
    put(&store, &k, "old");
    let r = store.reserve(&k).unwrap();
    fs::write(r.out_dir().join("a.txt"), "new!").unwrap();
    r.commit(info("s")).unwrap();
    let Lookup::Hit(e) = store.lookup(&k).unwrap() else {
        panic!()
    };
    assert_eq!(fs::read_to_string(e.file("a.txt")).unwrap(), "new!");
    assert_eq!(count_dir(&layout::trash_root(tmp.path())), 0);
}

#[test]
fn keys_that_could_escape_the_layout_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    for bad in [
        "../../../../etc/passwd",
        "ABCDEF0123456789",
        "short",
        "0123456789abcdef/",
    ] {
        assert!(
            matches!(store.lookup(bad), Err(CacheError::InvalidKey { .. })),
            "{bad}"
        );
    }
}

#[test]
fn stale_cleanup_spares_a_live_reservation() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let Lookup::Miss(live) = store.lookup(&key("live")).unwrap() else {
        panic!()
    };
    // A staging dir whose key is not locked: what a killed process leaves.
    let dead = layout::staging_root(tmp.path()).join(format!("{}.999999.00", key("dead")));
    fs::create_dir_all(dead.join("out")).unwrap();
    let report = super::super::stale::clean(&store).unwrap();
    assert_eq!(report.staging_removed, 1);
    assert!(!dead.exists());
    assert!(live.out_dir().is_dir());
}

#[test]
fn resume_dir_survives_a_failed_attempt_and_force_clears_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let k = key("resumable");
    let Lookup::Miss(r) = store.lookup(&k).unwrap() else {
        panic!()
    };
    fs::write(r.resume_dir().unwrap().join("ckpt"), "step 3").unwrap();
    drop(r); // the stage failed
    let Lookup::Miss(r) = store.lookup(&k).unwrap() else {
        panic!()
    };
    assert_eq!(
        fs::read_to_string(r.resume_dir().unwrap().join("ckpt")).unwrap(),
        "step 3"
    );
    drop(r);
    let r = store.reserve(&k).unwrap();
    assert!(
        !layout::resume_dir(tmp.path(), &k).exists(),
        "--force starts afresh"
    );
    drop(r);
}

#[test]
fn a_manifest_pointing_outside_its_entry_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let k = key("escape");
    let e = put(&store, &k, "x");
    let text = fs::read_to_string(e.dir().join("manifest.json")).unwrap();
    fs::write(
        e.dir().join("manifest.json"),
        text.replace("\"a.txt\"", "\"../../../../../etc/hostname\""),
    )
    .unwrap();
    match store.probe(&k).unwrap() {
        Probe::Corrupt(Defect::ManifestUnreadable(why)) => {
            assert!(why.contains("leaves out/"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}
