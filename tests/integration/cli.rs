//! The binary: exit codes and what each subcommand prints.

use std::process::{Command, Output};

fn rora(args: &[&str], cache: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rora"))
        .args(args)
        .current_dir(crate::root())
        .env("RORA_CACHE_DIR", cache)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_exit_codes_and_formats() {
    let cache = tempfile::tempdir().unwrap();
    let ok = rora(&["check", "tests/ui/check/pass/minimal.kdl"], cache.path());
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("ok (4 stages"));
    let bad = rora(
        &[
            "check",
            "--format",
            "plain",
            "tests/ui/check/fail/many-errors.kdl",
        ],
        cache.path(),
    );
    assert_eq!(bad.status.code(), Some(2));
    let err = text(&bad.stderr);
    for code in ["unknown-child", "out-of-range", "arity", "unknown-node"] {
        assert!(
            err.contains(&format!("rora::shape::{code}")),
            "{code} missing from\n{err}"
        );
    }
    let json = rora(
        &["check", "--format", "json", "tests/ui/check/fail/cycle.kdl"],
        cache.path(),
    );
    assert_eq!(json.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["diagnostics"][0]["code"], "rora::resolve::cycle");
    let missing = rora(&["check", "no/such/file.kdl"], cache.path());
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn plan_reports_jobs_and_cached_entries() {
    let cache = tempfile::tempdir().unwrap();
    let out = rora(
        &[
            "plan",
            "--format",
            "json",
            "tests/ui/check/pass/minimal.kdl",
        ],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let jobs = v["jobs"].as_array().unwrap();
    // model, data, adapter, the data tokenized with the model, train
    assert_eq!(jobs.len(), 5);
    assert!(jobs.iter().all(|j| j["cached"] == false));
    // Commit a manifest for the adapter's key by hand: plan now reports it cached.
    let key = jobs.iter().find(|j| j["stage"] == "a").unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = rora::cache::layout::manifest_path(cache.path(), &key);
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    std::fs::write(&manifest, "{}").unwrap();
    let out = rora(&["plan", "tests/ui/check/pass/minimal.kdl"], cache.path());
    let t = text(&out.stdout);
    assert!(t.contains("5 jobs, 1 cached"), "{t}");
    assert!(t.contains("s=1.0000 (lora alpha=8 r=8)"), "{t}");
    let bad = rora(&["plan", "tests/ui/check/fail/cycle.kdl"], cache.path());
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn explain_codes_and_jobs() {
    let cache = tempfile::tempdir().unwrap();
    let out = rora(&["explain", "rora::resolve::cycle"], cache.path());
    assert_eq!(out.status.code(), Some(0));
    let t = text(&out.stdout);
    assert!(t.contains("What:") && t.contains("Fix:"), "{t}");
    assert_eq!(
        rora(&["explain", "arity"], cache.path()).status.code(),
        Some(0)
    );
    assert_eq!(
        rora(&["explain", "rora::nope::x"], cache.path())
            .status
            .code(),
        Some(2)
    );
    let out = rora(
        &["explain", "t", "tests/ui/check/pass/minimal.kdl"],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("cached:    no")
            && t.contains("\"kind\": \"train\"")
            && t.contains("needs:     adapter = a"),
        "{t}"
    );
    let out = rora(
        &["explain", "t@rank=3", "tests/ui/check/pass/minimal.kdl"],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn schema_prints_the_registry() {
    let cache = tempfile::tempdir().unwrap();
    let out = rora(&["schema", "adapter"], cache.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("alpha-per-rank"));
    let out = rora(&["schema", "--format", "json", "train"], cache.path());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "train");
    assert_eq!(
        rora(&["schema", "adaptor"], cache.path()).status.code(),
        Some(2)
    );
    assert_eq!(rora(&["schema"], cache.path()).status.code(), Some(0));
}

/// `rora bench eval` end to end on the tiny random GGUF of the shared assets (skips without them):
/// it scores and generates, and writes what `scripts/bench_eval.py` reads.
#[test]
fn bench_eval_writes_ids_scores_and_timings() {
    let shared = std::env::var_os("RORA_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::root().join("../shared"));
    let gguf = shared.join("assets/models/tiny-random-llama.gguf");
    if !gguf.is_file() {
        eprintln!("SKIP: {} not found (set RORA_SHARED_DIR)", gguf.display());
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let data = crate::root().join("datasets/commonsense");
    let o = rora(
        &[
            "bench",
            "eval",
            "--gguf",
            gguf.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--items",
            "4",
            "--prompts",
            "2",
            "--max-new-tokens",
            "3",
            "--baseline",
            "--out",
            out.path().to_str().unwrap(),
        ],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("rora.json")).unwrap()).unwrap();
    assert_eq!(v["loglik_items"], 4);
    assert_eq!(v["gen_prompts"], 2);
    assert!(
        v["baseline"]["max_abs_diff_shared_vs_independent"]
            .as_f64()
            .unwrap()
            < 1e-3
    );
    let lines = std::fs::read_to_string(out.path().join("loglik.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 8, "two choices per piqa item");
}
