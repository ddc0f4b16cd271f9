//! `rora run` end to end on a tiny random model: every stage kind runs, a second run computes
//! nothing, a changed training value recomputes only train and what follows, and a run killed
//! with SIGKILL in the middle of training loses nothing (the rerun completes, the store verifies).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn pipeline(dir: &Path, lr: &str, steps: u32) -> PathBuf {
    let data = crate::root().join("datasets/commonsense");
    let text = format!(
        r#"
sweep rank 2 4
model "tiny" {{
    random layers=1 hidden=32 heads=2 kv-heads=1 ffn=64 seed=3
}}
data "cs" {{
    files "{data}/boolq.train.jsonl" "{data}/piqa.train.jsonl"
    template "llm-adapters"
    max-len 96
    limit 64
}}
adapter "ad" model="tiny" {{
    scaling "rora"
    rank (sweep)"rank"
    alpha 8
    targets "q_proj" "v_proj"
    dropout 0.1
}}
train "ft" adapter="ad" data="cs" {{
    steps {steps}
    batch 4 micro=2
    lr {lr}
    checkpoint-every 2
    seed 7
}}
merge "merged" from="ft"
eval "ev" model="merged" {{
    tasks "boolq"
    protocol "loglik"
    limit 8
    dir "{data}"
}}
report "summary" from="ev" {{
    table
    plot "accuracy-vs-rank"
}}
"#,
        data = data.display()
    );
    let p = dir.join("tiny.kdl");
    std::fs::write(&p, text).unwrap();
    p
}

fn rora(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rora"))
        .args(args)
        .env("RORA_CACHE_DIR", cache)
        .env("NO_COLOR", "1")
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn run_computes_once_and_reuses_across_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = pipeline(dir.path(), "1e-3", 4);
    let ps = p.to_str().unwrap();

    let first = rora(&["run", ps], &cache);
    let out = text(&first);
    assert_eq!(first.status.code(), Some(0), "{out}");
    // model, data, tokens (one for both ranks), 2 adapters, 2 trains, 2 merges, 2 evals, 1 report
    assert!(out.contains("12 jobs: 12 computed"), "{out}");
    assert!(out.contains("cs.tokens.tiny"), "{out}");

    let second = rora(&["run", ps], &cache);
    let out2 = text(&second);
    assert_eq!(second.status.code(), Some(0), "{out2}");
    assert!(out2.contains("12 jobs: 12 cached"), "{out2}");

    // The tokenized data is a planned job: gc of this pipeline keeps it, and nothing reruns.
    let gc = rora(&["cache", "gc", "--pipeline", ps], &cache);
    assert_eq!(gc.status.code(), Some(0), "{}", text(&gc));
    assert!(
        !text(&gc).contains("tokens"),
        "gc removed tokens: {}",
        text(&gc)
    );
    let after_gc = rora(&["run", ps], &cache);
    assert!(
        text(&after_gc).contains("12 jobs: 12 cached"),
        "{}",
        text(&after_gc)
    );
    let shown = rora(&["show-output", "cs.tokens.tiny", ps], &cache);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown));
    assert!(text(&shown).contains("dataset"), "{}", text(&shown));

    // A new learning rate: train, merge, eval and report recompute; model, data, tokens and
    // adapters do not.
    let p = pipeline(dir.path(), "2e-3", 4);
    let third = rora(&["run", p.to_str().unwrap()], &cache);
    let out3 = text(&third);
    assert_eq!(third.status.code(), Some(0), "{out3}");
    assert!(out3.contains("12 jobs: 5 cached, 7 computed"), "{out3}");

    let verify = rora(&["cache", "verify"], &cache);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));

    // The report holds one row per rank with the effective scale alpha/sqrt(r).
    let entries = cache.join("v1/entries");
    let table = walk(&entries)
        .into_iter()
        .find(|f| f.ends_with("out/table.md"))
        .expect("a report table");
    let md = std::fs::read_to_string(table).unwrap();
    assert!(md.contains("| rora | 2 | 8 | 5.657 (rora)"), "{md}");
    assert!(md.contains("| rora | 4 | 8 | 4.000 (rora)"), "{md}");
    // "# Params (%)" is the adapter stage's trainable share; "Train (s)" the train summary's.
    let json = walk(&entries)
        .into_iter()
        .find(|f| f.ends_with("out/table.json"))
        .expect("a report table.json");
    let tables: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let adapters: Vec<serde_json::Value> = walk(&entries)
        .into_iter()
        .filter(|f| f.ends_with("manifest.json"))
        .map(|f| serde_json::from_slice::<serde_json::Value>(&std::fs::read(f).unwrap()).unwrap())
        .filter(|m| m["kind"] == "adapter")
        .collect();
    for row in tables[0]["rows"].as_array().unwrap() {
        let adapter = adapters
            .iter()
            .find(|m| m["meta"]["outputs"]["rank"] == row["rank"])
            .unwrap();
        let want = adapter["meta"]["outputs"]["trainable_percent"]
            .as_f64()
            .unwrap();
        assert_eq!(row["params_pct"].as_f64(), Some(want), "{row}");
        assert!(
            row["train_seconds"]["mean"].as_f64().unwrap() > 0.0,
            "{row}"
        );
    }

    // Each train job says which decoder-layer path ran (LoRA with dropout on the CPU: fused).
    let summaries: Vec<serde_json::Value> = walk(&entries)
        .into_iter()
        .filter(|f| f.ends_with("out/summary.json"))
        .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
        .collect();
    assert!(!summaries.is_empty());
    for s in &summaries {
        assert_eq!(s["layer_path"]["path"], "fused", "{s}");
        assert!(s.get("knobs").is_none(), "{s}");
    }
    // Every manifest says where its job ran.
    let manifests: Vec<serde_json::Value> = walk(&entries)
        .into_iter()
        .filter(|f| f.ends_with("manifest.json"))
        .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
        .collect();
    assert!(manifests.len() >= 12);
    for m in &manifests {
        assert_eq!(m["meta"]["outputs"]["device"]["label"], "cpu", "{m}");
    }
}

#[test]
fn composed_layer_path_is_a_flag_recorded_in_the_train_summary() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = pipeline(dir.path(), "1e-3", 2);
    let ps = p.to_str().unwrap();
    let dump = dir.path().join("batches.jsonl");
    let run = rora(
        &[
            "run",
            ps,
            "--until",
            "ft@rank=2",
            "--layer-path",
            "composed",
            "--dump-batches",
            dump.to_str().unwrap(),
        ],
        &cache,
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let summary = walk(&cache.join("v1/entries"))
        .into_iter()
        .find(|f| f.ends_with("out/summary.json"))
        .expect("a train summary");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(summary).unwrap()).unwrap();
    assert_eq!(s["layer_path"]["path"], "composed", "{s}");
    assert_eq!(
        s["layer_path"]["composed_because"],
        "the composed path was asked for"
    );
    assert_eq!(s["knobs"]["dump_batches"], dump.to_str().unwrap(), "{s}");
    // two steps of two micro-batches each
    let lines = std::fs::read_to_string(&dump).unwrap().lines().count();
    assert_eq!(lines, 4);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
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
fn sigkill_during_training_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = pipeline(dir.path(), "1e-3", 40);
    let ps = p.to_str().unwrap().to_string();

    // Kill the run once a training checkpoint exists.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rora"))
        .args(["run", &ps])
        .env("RORA_CACHE_DIR", &cache)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let resume = cache.join("v1/resume");
    let start = Instant::now();
    let mut killed_mid_train = false;
    while start.elapsed() < Duration::from_secs(120) {
        if walk(&resume)
            .iter()
            .any(|f| f.to_string_lossy().contains("step-"))
        {
            child.kill().unwrap(); // SIGKILL
            killed_mid_train = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    assert!(
        killed_mid_train,
        "no checkpoint appeared before the run ended"
    );

    // What was committed before the kill is intact; nothing half-written is an entry.
    let verify = rora(&["cache", "verify"], &cache);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));

    let rerun = rora(&["run", &ps], &cache);
    let out = text(&rerun);
    assert_eq!(rerun.status.code(), Some(0), "{out}");
    assert!(out.contains("cached"), "{out}");
    // The killed train job resumed from its checkpoint instead of starting over.
    let resumed = crate::support::some_train_resumed(&cache);
    assert!(resumed, "no train entry records a resume");
    let verify = rora(&["cache", "verify"], &cache);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[test]
fn prune_stages_run_and_feed_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let data = crate::root().join("datasets/commonsense");
    let src = format!(
        r#"
model "tiny" {{
    random layers=2 hidden=32 heads=4 kv-heads=2 ffn=64 seed=1
}}
data "cs" {{
    files "{data}/boolq.train.jsonl"
    max-len 48
    limit 16
}}
prune "half" model="tiny" {{
    method "wanda"
    sparsity 0.5
    calibration data="cs" rows=4
}}
prune "slim" model="tiny" {{
    method "ffn"
    sparsity 0.25
    calibration data="cs" rows=4
}}
adapter "ad" model="slim" {{
    rank 4
    alpha 8
    targets "up_proj" "down_proj"
}}
train "ft" adapter="ad" data="cs" {{
    steps 2
    batch 4 micro=4
}}
"#,
        data = data.display()
    );
    let p = dir.path().join("prune.kdl");
    std::fs::write(&p, src).unwrap();
    let ps = p.to_str().unwrap();
    let run = rora(&["run", ps], &cache);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));

    let show = rora(&["show-output", "half", ps], &cache);
    let listing = text(&show);
    assert!(listing.contains("prune_report.txt"), "{listing}");
    let out_dir = listing
        .lines()
        .find_map(|l| l.strip_prefix("output:"))
        .map(|s| PathBuf::from(s.trim()))
        .unwrap();
    let report = std::fs::read_to_string(out_dir.join("prune_report.txt")).unwrap();
    assert!(report.contains("projections 50.00% zero"), "{report}");

    // The structured prune removed a quarter of the FFN channels: 64 -> 48, recorded per layer.
    let show = rora(&["show-output", "slim", ps], &cache);
    let out_dir = text(&show)
        .lines()
        .find_map(|l| l.strip_prefix("output:"))
        .map(|s| PathBuf::from(s.trim()))
        .unwrap();
    let info = rora(
        &["model", "info", out_dir.join("model").to_str().unwrap()],
        &cache,
    );
    assert!(text(&info).contains("ffn 48"), "{}", text(&info));
}

/// The `model` stage's `dtype` is the compute dtype of the frozen base: with `dtype "bf16"` the
/// train stage runs a bf16 base with f32 adapters (saved as f32), and its losses follow the f32
/// run's closely without being bit-identical (so the base really ran in bf16).
#[test]
fn bf16_base_trains_f32_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let data = crate::root().join("datasets/commonsense");
    let mut losses = vec![];
    for dtype in ["f32", "bf16"] {
        let src = format!(
            r#"
model "tiny" {{
    random layers=2 hidden=64 heads=4 kv-heads=2 ffn=128 seed=4
    dtype "{dtype}"
}}
data "cs" {{
    files "{data}/piqa.train.jsonl"
    max-len 64
    limit 16
}}
adapter "ad" model="tiny" {{
    scaling "rora"
    rank 4
    alpha 12
    targets "q_proj" "v_proj" "down_proj"
}}
train "ft" adapter="ad" data="cs" {{
    steps 3
    batch 4 micro=4
    lr 1e-2
    seed 3
}}
"#,
            data = data.display()
        );
        let p = dir.path().join(format!("{dtype}.kdl"));
        std::fs::write(&p, src).unwrap();
        let ps = p.to_str().unwrap();
        let run = rora(&["run", ps], &cache);
        assert_eq!(run.status.code(), Some(0), "{}", text(&run));
        let show = rora(&["show-output", "ft", ps], &cache);
        let out_dir = text(&show)
            .lines()
            .find_map(|l| l.strip_prefix("output:"))
            .map(|s| PathBuf::from(s.trim()))
            .unwrap();
        let st = std::fs::read(out_dir.join("adapter/adapter_model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&st).unwrap();
        assert!(st.len() >= 6);
        for (name, view) in st.tensors() {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{dtype}: {name}");
        }
        let metrics = std::fs::read_to_string(out_dir.join("metrics.jsonl")).unwrap();
        let l: Vec<f64> = metrics
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["kind"] == "train")
            .map(|v| v["loss"].as_f64().unwrap())
            .collect();
        assert_eq!(l.len(), 3, "{metrics}");
        assert!(l.iter().all(|x| x.is_finite()), "{l:?}");
        losses.push(l);
    }
    let (f, b) = (&losses[0], &losses[1]);
    for (x, y) in f.iter().zip(b) {
        assert!((x - y).abs() / x.abs() < 2e-2, "f32 {f:?} vs bf16 {b:?}");
    }
    assert_ne!(f, b, "the bf16 base ran in f32");
}
