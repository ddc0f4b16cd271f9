//! `--device`, the memory estimate in `rora plan`, `rora model logits` and `rora bench train
//! --device`: what a CPU machine can check of the GPU path.

use std::process::{Command, Output};

fn rora(args: &[&str], cache: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rora"))
        .args(args)
        .current_dir(crate::root())
        .env("RORA_CACHE_DIR", cache)
        .env("NO_COLOR", "1")
        .env_remove("RORA_DEVICE")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether this machine has a GPU that the test binary's rora can open (then the error tests
/// below do not apply).
fn gpu_opens() -> bool {
    rora::device::DeviceSpec::Cuda(0).open().is_ok()
}

#[test]
fn device_cuda_without_a_gpu_fails_at_plan_time_and_commits_nothing() {
    if gpu_opens() {
        eprintln!("SKIP: a CUDA GPU is present; the no-GPU error paths cannot be exercised");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let want = if rora::device::CUDA_COMPILED {
        "no usable CUDA GPU"
    } else {
        "no CUDA support"
    };
    let plan = rora(&["plan", "--device", "cuda"], cache.path());
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan.stderr));
    assert!(text(&plan.stderr).contains(want), "{}", text(&plan.stderr));
    let run = rora(
        &["run", "--device", "cuda:1", "pipelines/quickstart.kdl"],
        cache.path(),
    );
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
    assert!(text(&run.stderr).contains(want), "{}", text(&run.stderr));
    assert!(
        text(&run.stderr).contains("cuda:1"),
        "{}",
        text(&run.stderr)
    );
    // nothing ran: no stage entry was written
    let entries = walk(cache.path())
        .into_iter()
        .filter(|p| p.ends_with("manifest.json"))
        .count();
    assert_eq!(entries, 0);
    let bad = rora(&["plan", "--device", "gpu"], cache.path());
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("unknown device `gpu`"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
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
    out
}

#[test]
fn a_pipeline_asking_for_cuda_warns_in_plan_and_fails_in_run() {
    if gpu_opens() {
        eprintln!("SKIP: a CUDA GPU is present");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(crate::root().join("pipelines/quickstart.kdl")).unwrap();
    let datasets = format!("{}/datasets", crate::root().display());
    let cuda = src
        .replacen("dtype \"f32\"", "dtype \"f32\"\n    device \"cuda\"", 1)
        .replace("../datasets", &datasets);
    assert_ne!(
        src, cuda,
        "the quickstart's model stage has `dtype \"f32\"`"
    );
    let file = dir.path().join("q.kdl");
    std::fs::write(&file, cuda).unwrap();
    let f = file.to_str().unwrap();
    let plan = rora(&["plan", f], dir.path());
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));
    assert!(text(&plan.stderr).contains("warning: device `cuda:0`"));
    let run = rora(&["run", "--dry-run", f], dir.path());
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stdout));
    // --device overrides the pipeline
    let run = rora(&["run", "--dry-run", "--device", "cpu", f], dir.path());
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
}

#[test]
fn plan_prints_a_memory_estimate_per_train_job_and_warns_over_the_limit() {
    let cache = tempfile::tempdir().unwrap();
    let out = rora(
        &["plan", "--device", "cpu", "--format", "json"],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mem = v["memory"].as_array().unwrap();
    let trains = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "train")
        .count();
    assert!(trains > 0);
    assert_eq!(mem.len(), trains);
    for m in mem {
        let e = &m["estimate"];
        let parts: u64 = [
            "weights",
            "adapters",
            "gradients",
            "optimizer",
            "activations",
        ]
        .iter()
        .map(|k| e[*k].as_u64().unwrap())
        .sum();
        assert_eq!(m["total"].as_u64(), Some(parts));
        // quickstart: random 2 layers, hidden 64, vocab 259, f32: 2*259*64 + 2*(...) weights
        assert!(e["weights"].as_u64().unwrap() > 4 * 2 * 259 * 64);
    }
    assert!(v["device_memory"].as_u64().is_some_and(|b| b > 0));

    let fits = rora(
        &["plan", "--device", "cpu", "--memory", "h200"],
        cache.path(),
    );
    let t = text(&fits.stdout);
    assert!(t.contains("memory per train job on cpu"), "{t}");
    assert!(t.contains("150.75 GB available"), "{t}");
    assert!(!t.contains("warning:"), "{t}");
    let tight = rora(
        &["plan", "--device", "cpu", "--memory", "1MB"],
        cache.path(),
    );
    let t = text(&tight.stdout);
    assert_eq!(tight.status.code(), Some(0));
    assert!(t.contains("warning: job #") && t.contains("but cpu"), "{t}");
    let bad = rora(&["plan", "--memory", "lots"], cache.path());
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn logits_compare_and_bench_on_cpu() {
    let cache = tempfile::tempdir().unwrap();
    let out = rora(
        &[
            "model",
            "logits",
            "random:tiny",
            "--device",
            "cpu",
            "--compare",
            "cpu",
            "--tokens",
            "5,6,7,300",
        ],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // the same model on the same device: bit-identical
    assert_eq!(v["max_abs_diff"], 0.0);
    assert_eq!(v["ok"], true);
    assert_eq!(v["tokens"], 4);
    assert!(v["max_abs_logit"].as_f64().unwrap() > 0.0);
    // bf16 on the CPU vs itself too, with the bf16 tolerance
    let out = rora(
        &[
            "model",
            "logits",
            "random:tiny",
            "--dtype",
            "bf16",
            "--compare",
            "cpu",
        ],
        cache.path(),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tol"], 2e-2);

    let b = rora(
        &[
            "bench", "train", "--preset", "tiny", "--r", "4", "--alpha", "12", "--batch", "2",
            "--seq", "16", "--steps", "2", "--warmup", "0", "--device", "cpu",
        ],
        cache.path(),
    );
    assert_eq!(b.status.code(), Some(0), "{}", text(&b.stderr));
    let v: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    let losses = v["losses"].as_array().unwrap();
    assert_eq!(losses.len(), 2);
    // random tokens over a 1000-token vocabulary: the first loss is near ln(1000) = 6.91
    assert!((losses[0].as_f64().unwrap() - 6.91).abs() < 0.5, "{v}");
    assert!(v["device"].as_str().unwrap().starts_with("cpu"));
}
