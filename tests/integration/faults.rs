//! The faults of issue 5 through the real `rora` binary on a tiny random model: two runs of one
//! pipeline at once, a file size limit (EFBIG, as a full disk fails writes) and a permission error
//! while storing a stage's output, and corrupted / truncated entries. Each must lose nothing:
//! no partial entry, earlier entries intact (`rora cache verify`), and a clean rerun that reuses
//! them.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::support::{
    data_dir, entry_dir, jobs_with, rora, rora_cmd, run_logs, staging_left, text, walk,
};

/// data (small entry) -> model (the biggest files) -> adapter -> train: 4 jobs, plus the
/// tokenized dataset the train stage stores as its own entry.
fn pipeline(dir: &Path) -> PathBuf {
    let data = data_dir();
    let text = format!(
        r#"
data "cs" {{
    files "{data}/boolq.train.jsonl" "{data}/piqa.train.jsonl"
    template "llm-adapters"
    max-len 64
    limit 16
}}
model "tiny" {{
    random layers=1 hidden=32 heads=2 kv-heads=1 ffn=64 seed=3
}}
adapter "ad" model="tiny" {{
    scaling "rora"
    rank 2
    alpha 8
    targets "q_proj" "v_proj"
}}
train "ft" adapter="ad" data="cs" {{
    steps 2
    batch 2 micro=2
    lr 1e-3
    seed 7
}}
"#,
        data = data.display()
    );
    let p = dir.join("faults.kdl");
    std::fs::write(&p, text).unwrap();
    p
}

const JOBS: [&str; 5] = ["cs", "tiny", "ad", "cs.tokens.tiny", "ft"];

fn assert_verifies(cache: &Path) {
    let v = rora(&["cache", "verify"], cache);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

#[test]
fn two_runs_at_once_compute_each_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = pipeline(dir.path());
    let ps = p.to_str().unwrap();
    let spawn = || {
        rora_cmd(&["run", ps], &cache)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(a.status.code(), Some(0), "{}", text(&a));
    assert_eq!(b.status.code(), Some(0), "{}", text(&b));

    let logs = run_logs(&cache);
    assert_eq!(logs.len(), 2, "one event log per run");
    let mut done_count: std::collections::BTreeMap<String, usize> = Default::default();
    for log in &logs {
        let (done, cached) = (jobs_with(log, "job_done"), jobs_with(log, "job_cached"));
        // Every job of each run is either computed by it or taken from the store.
        for j in JOBS {
            assert!(
                done.contains_key(j) ^ cached.contains_key(j),
                "{j}: {log:?}"
            );
        }
        for key in done.values() {
            *done_count.entry(key.clone()).or_default() += 1;
        }
    }
    assert_eq!(done_count.len(), JOBS.len(), "{done_count:?}");
    assert!(done_count.values().all(|&n| n == 1), "{done_count:?}");
    // Both runs name the same entry for every job: identical outputs.
    let out_paths = |log: &[serde_json::Value]| -> Vec<(String, String)> {
        let mut v: Vec<_> = log
            .iter()
            .filter(|e| e["event"] == "job_done" || e["event"] == "job_cached")
            .map(|e| {
                (
                    e["job"]["label"].as_str().unwrap().to_string(),
                    e["path"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(out_paths(&logs[0]), out_paths(&logs[1]));
    // 4 jobs + the tokenized dataset, nothing twice, nothing half-written.
    let manifests = walk(&cache.join("v1/entries"))
        .into_iter()
        .filter(|f| f.ends_with("manifest.json"))
        .count();
    assert_eq!(manifests, 5);
    assert!(staging_left(&cache).is_empty());
    assert_verifies(&cache);
}

/// The failed job's key from the last run's log.
fn failed_key(cache: &Path, label: &str) -> String {
    let logs = run_logs(cache);
    let failed = jobs_with(logs.last().unwrap(), "job_failed");
    failed
        .get(label)
        .unwrap_or_else(|| panic!("{label} did not fail: {failed:?}"))
        .clone()
}

fn assert_no_partial_entry(cache: &Path, key: &str) {
    let e = entry_dir(cache, key);
    assert!(!e.exists(), "partial entry {}", e.display());
    assert!(staging_left(cache).is_empty(), "{:?}", staging_left(cache));
}

/// The size of `key`'s manifest and of its largest output file, in a store at `cache`.
fn sizes(cache: &Path, key: &str) -> (u64, u64) {
    let e = entry_dir(cache, key);
    let manifest = std::fs::metadata(e.join("manifest.json")).unwrap().len();
    let largest = walk(&e.join("out"))
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .max()
        .unwrap();
    (manifest, largest)
}

#[test]
fn file_size_limit_while_committing_fails_cleanly_and_a_rerun_reuses_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let ps = p.to_str().unwrap();
    // Measure the entries once, to set a limit that the data stage's files and manifest fit
    // under, and the adapter's files too, but not the adapter's manifest: the adapter stage then
    // fails in the store's commit (writing manifest.json), after its outputs were written.
    let scratch = dir.path().join("scratch");
    let measured = rora(&["run", ps], &scratch);
    assert_eq!(measured.status.code(), Some(0), "{}", text(&measured));
    let keys = jobs_with(&run_logs(&scratch)[0], "job_done");
    let (data_manifest, data_largest) = sizes(&scratch, &keys["cs"]);
    let (ad_manifest, ad_largest) = sizes(&scratch, &keys["ad"]);
    let limit = (ad_largest + ad_manifest) / 2;
    assert!(
        data_manifest.max(data_largest) < limit && ad_largest < limit && limit < ad_manifest,
        "no limit separates the stages: data {data_manifest}/{data_largest}, adapter {ad_manifest}/{ad_largest}"
    );

    // The model is already stored (its weights are far over the limit).
    let cache = dir.path().join("cache");
    let model = rora(&["run", "--only", "tiny", ps], &cache);
    assert_eq!(model.status.code(), Some(0), "{}", text(&model));

    // Every file this process writes is limited to `limit` bytes: writes past it fail with EFBIG,
    // as on a full disk (SIGXFSZ ignored so the write returns the error instead of killing).
    let mut cmd = rora_cmd(&["run", ps], &cache);
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(3), "{msg}");
    let failed_line = msg
        .lines()
        .find(|l| l.contains("FAILED") && l.contains("ad:"))
        .unwrap_or_else(|| panic!("no FAILED line for the adapter stage: {msg}"));
    assert!(
        failed_line.contains("cache: disk full / file too large: cannot write")
            && failed_line.contains("/v1/staging/")
            && failed_line.contains("manifest.json"),
        "{failed_line}"
    );
    // The data stage committed under the limit; the adapter left nothing.
    assert!(
        entry_dir(&cache, &keys["cs"])
            .join("manifest.json")
            .is_file(),
        "{msg}"
    );
    assert_no_partial_entry(&cache, &keys["ad"]);
    assert_verifies(&cache);

    let rerun = rora(&["run", ps], &cache);
    assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun));
    let logs = run_logs(&cache);
    let last = logs.last().unwrap();
    let cached = jobs_with(last, "job_cached");
    assert_eq!(
        (cached.get("cs"), cached.get("tiny")),
        (keys.get("cs"), keys.get("tiny"))
    );
    assert_eq!(
        jobs_with(last, "job_done"),
        jobs_with(&run_logs(&scratch)[0], "job_done")
            .into_iter()
            .filter(|(j, _)| j == "ad" || j == "cs.tokens.tiny" || j == "ft")
            .collect()
    );
    assert_verifies(&cache);
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chmod_tree(dir: &Path, dir_mode: u32, file_mode: u32) {
    for f in walk(dir) {
        chmod(&f, file_mode);
    }
    fn dirs(d: &Path, mode: u32) {
        chmod(d, mode);
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                dirs(&e.path(), mode);
            }
        }
    }
    dirs(dir, dir_mode);
}

#[test]
fn permission_error_while_storing_fails_cleanly_and_a_rerun_reuses_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = pipeline(dir.path());
    let ps = p.to_str().unwrap();
    let first = rora(&["run", "--until", "cs", ps], &cache);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let stored = jobs_with(&run_logs(&cache)[0], "job_done");
    assert!(stored.contains_key("cs"));

    // Committed entries read-only; staging, locks, logs writable. As root permission bits do
    // not deny, so the run is done as `nobody` (uid 65534), for whom they do.
    chmod(dir.path(), 0o755);
    chmod_tree(&cache, 0o777, 0o666);
    chmod_tree(&cache.join("v1/entries"), 0o555, 0o444);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = rora_cmd(&["run", ps], &cache);
    if root {
        cmd.uid(65534).gid(65534);
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if root => {
            chmod_tree(&cache, 0o755, 0o644);
            eprintln!("SKIP: cannot run rora as uid 65534 to make permission bits deny ({e})");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    chmod_tree(&cache, 0o755, 0o644);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(3), "{msg}");
    let failed_line = msg
        .lines()
        .find(|l| l.contains("FAILED") && l.contains("tiny"))
        .unwrap_or_else(|| panic!("no FAILED line for the model stage: {msg}"));
    assert!(failed_line.contains("Permission denied"), "{failed_line}");
    assert!(
        failed_line.contains("v1/entries"),
        "names the dir: {failed_line}"
    );
    let key = failed_key(&cache, "tiny");
    assert_no_partial_entry(&cache, &key);
    let logs = run_logs(&cache);
    assert_eq!(jobs_with(logs.last().unwrap(), "job_cached"), stored);
    assert_verifies(&cache);

    let rerun = rora(&["run", ps], &cache);
    assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun));
    let logs = run_logs(&cache);
    assert_eq!(jobs_with(logs.last().unwrap(), "job_cached"), stored);
    assert_eq!(jobs_with(logs.last().unwrap(), "job_done").len(), 4);
    assert_verifies(&cache);
}

#[test]
fn corrupted_and_truncated_entries_are_reported_and_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = pipeline(dir.path());
    let ps = p.to_str().unwrap();
    let first = rora(&["run", ps], &cache);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let keys = jobs_with(&run_logs(&cache)[0], "job_done");
    let largest = |key: &str| {
        walk(&entry_dir(&cache, key).join("out"))
            .into_iter()
            .max_by_key(|f| std::fs::metadata(f).unwrap().len())
            .unwrap()
    };
    // The model's weights: one byte flipped, same length (only a re-hash can see it).
    let weights = largest(&keys["tiny"]);
    let original = std::fs::read(&weights).unwrap();
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&weights, &bytes).unwrap();
    // The adapter's largest file: cut in half.
    let adapter = largest(&keys["ad"]);
    let adapter_original = std::fs::read(&adapter).unwrap();
    std::fs::write(&adapter, &adapter_original[..adapter_original.len() / 2]).unwrap();

    let v = rora(&["cache", "verify"], &cache);
    let vt = text(&v);
    assert_ne!(v.status.code(), Some(0), "{vt}");
    assert!(vt.contains("5 entries verified, 2 corrupt"), "{vt}");
    assert!(
        vt.lines()
            .any(|l| l.contains(&keys["tiny"]) && l.contains("does not match its blake3 hash")),
        "{vt}"
    );
    assert!(
        vt.lines()
            .any(|l| l.contains(&keys["ad"]) && l.contains("bytes, manifest says")),
        "{vt}"
    );

    let rerun = rora(&["run", ps], &cache);
    let rt = text(&rerun);
    assert_eq!(rerun.status.code(), Some(0), "{rt}");
    assert!(rt.contains("corrupt  tiny"), "{rt}");
    assert!(rt.contains("corrupt  ad"), "{rt}");
    let last = run_logs(&cache).pop().unwrap();
    let done = jobs_with(&last, "job_done");
    assert_eq!(
        done.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ad", "tiny"]
    );
    assert_eq!(done["tiny"], keys["tiny"]);
    assert_eq!(jobs_with(&last, "job_corrupt").len(), 2);
    // Recomputed, not reused: the files are whole again (the stages are deterministic).
    assert_eq!(std::fs::read(&weights).unwrap(), original);
    assert_eq!(std::fs::read(&adapter).unwrap(), adapter_original);
    assert_verifies(&cache);
}
