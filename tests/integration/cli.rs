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

// Completion scripts come from the parser's own definitions: every subcommand is in them, and
// bash accepts the bash one (`bash -n`).
#[test]
fn completions_cover_every_subcommand_and_bash_parses_them() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let o = crate::support::rora(&["completions", shell], dir.path());
        assert!(o.status.success(), "{}", crate::support::text(&o));
        let script = String::from_utf8(o.stdout).unwrap();
        for sub in [
            "check",
            "plan",
            "run",
            "show-output",
            "cache",
            "completions",
        ] {
            assert!(script.contains(sub), "{shell}: {sub}");
        }
        if shell == "bash" {
            let path = dir.path().join("rora.bash");
            std::fs::write(&path, &script).unwrap();
            let ok = std::process::Command::new("bash")
                .arg("-n")
                .arg(&path)
                .status()
                .unwrap();
            assert!(ok.success(), "bash -n rejects the script");
        }
    }
    let o = crate::support::rora(&["completions", "tcsh"], dir.path());
    assert!(!o.status.success());
    assert!(
        crate::support::text(&o).contains("possible values"),
        "{}",
        crate::support::text(&o)
    );
}

// `--format json` for the listing commands: `cache ls` and `show-output` print one JSON document.
#[test]
fn cache_ls_and_show_output_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = dir.path().join("p.kdl");
    std::fs::write(
        &p,
        "model \"tiny\" {\n    random layers=1 hidden=32 heads=2 kv-heads=1 ffn=64 seed=3\n}\n",
    )
    .unwrap();
    let o = crate::support::rora(&["run", p.to_str().unwrap()], &cache);
    assert!(o.status.success(), "{}", crate::support::text(&o));
    let o = crate::support::rora(&["--format", "json", "cache", "ls"], &cache);
    assert!(o.status.success(), "{}", crate::support::text(&o));
    let ls: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let entries = ls["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{ls}");
    assert_eq!(
        (entries[0]["stage"].as_str(), entries[0]["kind"].as_str()),
        (Some("tiny"), Some("model"))
    );
    assert_eq!(entries[0]["key"].as_str().unwrap().len(), 64);
    assert_eq!(ls["bytes"], entries[0]["bytes"]);
    let o = crate::support::rora(
        &[
            "--format",
            "json",
            "show-output",
            "tiny",
            p.to_str().unwrap(),
        ],
        &cache,
    );
    assert!(o.status.success(), "{}", crate::support::text(&o));
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["key"], entries[0]["key"]);
    assert!(
        shown["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "model/config.json"),
        "{shown}"
    );
    assert_eq!(shown["summary"]["layers"], 1);
}
