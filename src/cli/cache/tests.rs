use std::fs;
use std::time::{Duration, SystemTime};

use clap::{CommandFactory, Parser};

use super::*;
use crate::cache::{CommitInfo, Lookup};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    cache: CacheArgs,
}

fn args(line: &[&str]) -> CacheArgs {
    let mut argv = vec!["rora-cache"];
    argv.extend_from_slice(line);
    Cli::try_parse_from(argv).unwrap().cache
}

fn store_with(root: &Path, labels: &[&str]) -> Vec<String> {
    let store = Store::open(root).unwrap();
    labels
        .iter()
        .map(|l| {
            let k = blake3::hash(l.as_bytes()).to_hex().to_string();
            let Lookup::Miss(r) = store.lookup(&k).unwrap() else {
                panic!()
            };
            fs::write(r.out_dir().join("x.bin"), vec![0u8; 2048]).unwrap();
            let info = CommitInfo {
                stage: l.to_string(),
                kind: "train".into(),
                pipeline: Some("p.kdl".into()),
                ..Default::default()
            };
            r.commit(info).unwrap();
            k
        })
        .collect()
}

fn text(a: CacheArgs, root: &Path, now: SystemTime) -> (miette::Result<()>, String) {
    let mut out = Vec::new();
    let res = run_to(a, root, &mut out, now);
    (res, String::from_utf8(out).unwrap())
}

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn ls_lists_stage_kind_size_age_and_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = store_with(tmp.path(), &["ft@rank=4"]);
    let (res, out) = text(
        args(&["ls"]),
        tmp.path(),
        SystemTime::now() + Duration::from_secs(2 * 86400 + 5),
    );
    res.unwrap();
    let row = out.lines().nth(1).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[0], &keys[0][..12]);
    assert_eq!(&cols[1..3], ["ft@rank=4", "train"]);
    assert_eq!(cols[5], "2d");
    assert_eq!(cols[6], "p.kdl");
    assert!(
        out.lines().last().unwrap().starts_with("1 entries, "),
        "{out}"
    );
}

#[test]
fn verify_fails_on_a_corrupt_entry_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = store_with(tmp.path(), &["a", "b"]);
    let (res, out) = text(args(&["verify"]), tmp.path(), SystemTime::now());
    res.unwrap();
    assert!(out.contains("2 entries verified, 0 corrupt"), "{out}");
    let victim = crate::cache::layout::out_dir(tmp.path(), &keys[1]).join("x.bin");
    fs::write(&victim, vec![1u8; 2048]).unwrap();
    let (res, out) = text(args(&["verify"]), tmp.path(), SystemTime::now());
    assert!(res.is_err());
    assert!(
        out.contains(&format!(
            "CORRUPT  {}  b: file out/x.bin does not match its blake3 hash",
            keys[1]
        )),
        "{out}"
    );
}

#[test]
fn gc_with_live_keys_and_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("c");
    let keys = store_with(&root, &["a", "b", "c"]);
    let live = tmp.path().join("live.txt");
    fs::write(&live, format!("# live\n{}\n{}\n", keys[0], keys[1])).unwrap();
    let (res, out) = text(
        args(&["gc", "--live-keys", live.to_str().unwrap(), "--dry-run"]),
        &root,
        SystemTime::now(),
    );
    res.unwrap();
    assert!(
        out.contains(&format!("would remove  {}  c", keys[2])),
        "{out}"
    );
    assert_eq!(
        inventory::list(&Store::open_read_only(&root))
            .unwrap()
            .len(),
        3
    );
    let (res, _) = text(
        args(&["gc", "--live-keys", live.to_str().unwrap()]),
        &root,
        SystemTime::now(),
    );
    res.unwrap();
    assert_eq!(
        inventory::list(&Store::open_read_only(&root))
            .unwrap()
            .len(),
        2
    );
    // Each entry is a bit over 2 KiB (file + manifest): a 3K budget keeps one.
    let (res, out) = text(args(&["gc", "--max-size", "3K"]), &root, SystemTime::now());
    res.unwrap();
    assert!(out.contains("removed 1 entries"), "{out}");
}

#[test]
fn sizes_parse_with_binary_units() {
    assert_eq!(parse_size("10G"), Ok(10 << 30));
    assert_eq!(parse_size("500M"), Ok(500 << 20));
    assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("2kb"), Ok(2048));
    assert!(parse_size("10X").is_err());
    assert!(parse_size("G").is_err());
}

#[test]
fn gc_keeps_the_jobs_of_the_given_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("c");
    let pipeline = tmp.path().join("p.kdl");
    fs::write(
        &pipeline,
        "model \"tiny\" {\n    random layers=1 hidden=32 heads=2 kv-heads=1 ffn=64 seed=0\n}\n",
    )
    .unwrap();
    let checked = crate::check::check_file(&pipeline).unwrap();
    let plan = crate::plan::plan(
        &checked.pipeline.unwrap(),
        &mut crate::plan::DigestMemo::new(),
    )
    .unwrap();
    let live_key = plan.jobs[0].key.hex().to_string();
    let store = Store::open(&root).unwrap();
    let Lookup::Miss(r) = store.lookup(&live_key).unwrap() else {
        panic!()
    };
    r.commit(CommitInfo::default()).unwrap();
    let dead = store_with(&root, &["stale"]);
    let (res, out) = text(
        args(&["gc", "--pipeline", pipeline.to_str().unwrap()]),
        &root,
        SystemTime::now(),
    );
    res.unwrap();
    assert!(out.contains(&format!("removed  {}", dead[0])), "{out}");
    assert_eq!(
        inventory::list(&store)
            .unwrap()
            .iter()
            .map(|e| e.key.clone())
            .collect::<Vec<_>>(),
        [live_key]
    );
    // A pipeline that does not check removes nothing.
    fs::write(&pipeline, "model \"tiny\" { nonsense 1 }\n").unwrap();
    let (res, _) = text(
        args(&["gc", "--pipeline", pipeline.to_str().unwrap()]),
        &root,
        SystemTime::now(),
    );
    assert!(
        res.unwrap_err()
            .to_string()
            .contains("does not check; nothing removed")
    );
    assert_eq!(inventory::list(&store).unwrap().len(), 1);
}
