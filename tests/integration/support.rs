//! Helpers shared by the fault and hub tests: running the real `rora` binary, reading the JSONL
//! event logs it leaves in the cache, and finding entries on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `rora <args>` with `RORA_CACHE_DIR=cache`, plain output, one compute thread.
pub fn rora_cmd(args: &[&str], cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rora"));
    c.args(args)
        .env("RORA_CACHE_DIR", cache)
        .env("NO_COLOR", "1")
        .env("RAYON_NUM_THREADS", "1");
    c
}

pub fn rora(args: &[&str], cache: &Path) -> Output {
    rora_cmd(args, cache).output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The events of every run log in the cache's `runs/`, one list per log, oldest first.
pub fn run_logs(cache: &Path) -> Vec<Vec<serde_json::Value>> {
    let mut logs: Vec<PathBuf> = walk(&cache.join("runs"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    logs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    logs.into_iter()
        .map(|p| {
            std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                // A run that hit a file size limit leaves a cut-off last line.
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .collect()
}

/// `label -> key` of the jobs with event `kind` (`job_done`, `job_cached`, `job_failed`, ...).
pub fn jobs_with(log: &[serde_json::Value], kind: &str) -> BTreeMap<String, String> {
    log.iter()
        .filter(|e| e["event"] == kind)
        .map(|e| {
            (
                e["job"]["label"].as_str().unwrap().to_string(),
                e["job"]["key"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The entry dir of a key.
pub fn entry_dir(cache: &Path, key: &str) -> PathBuf {
    cache.join("v1/entries").join(&key[..2]).join(key)
}

/// Names left in the staging dir.
pub fn staging_left(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache.join("v1/staging"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The shipped commonsense subset the tiny pipelines train on.
pub fn data_dir() -> PathBuf {
    crate::root().join("datasets/commonsense")
}

/// Whether some train entry in the store records that it resumed from a checkpoint.
pub fn some_train_resumed(cache: &Path) -> bool {
    walk(&cache.join("v1/entries"))
        .into_iter()
        .filter(|f| f.ends_with("manifest.json"))
        .map(|f| std::fs::read_to_string(f).unwrap())
        .filter(|m| m.contains("\"kind\": \"train\""))
        .any(|m| m.contains("\"resumed_from\": ") && !m.contains("\"resumed_from\": null"))
}

/// `rora --format json show-output JOB PIPELINE`, parsed (the test fails when the job is not
/// in the cache).
pub fn show_output(cache: &Path, job: &str, pipeline: &Path) -> serde_json::Value {
    let o = rora(
        &[
            "--format",
            "json",
            "show-output",
            job,
            pipeline.to_str().unwrap(),
        ],
        cache,
    );
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// The `out/` folder of a job's cache entry.
pub fn output_dir(cache: &Path, job: &str, pipeline: &Path) -> PathBuf {
    PathBuf::from(
        show_output(cache, job, pipeline)["output"]
            .as_str()
            .unwrap(),
    )
}
