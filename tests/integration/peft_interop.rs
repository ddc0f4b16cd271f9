//! Round trips with the real Hugging Face libraries, where this machine has them: transformers
//! loads a model folder rora wrote without a warning and computes rora's logits; adapters that
//! PEFT trains (LoRA, rsLoRA, DoRA, rank/alpha patterns with layers_to_transform, a regex
//! target) enter a rora pipeline, and rora's logits, unmerged and merged, equal PEFT's.
//!
//! Needs a Python with torch, transformers and peft: `$PEFT_VENV/bin/python`, else
//! `${TMPDIR:-/tmp}/peft-venv/bin/python` (what `../shared/bench/setup.sh` makes). Without one
//! the test prints why and passes without checking anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{output_dir, rora, show_output, text};

/// The Python with torch + transformers + peft, or why there is none.
pub fn peft_python() -> Result<PathBuf, String> {
    let venv = std::env::var_os("PEFT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp"))
                .join("peft-venv")
        });
    let py = venv.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import torch, transformers, peft"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(py)
    } else {
        Err(format!(
            "no Python with torch, transformers and peft at {} (set PEFT_VENV, or make one with ../shared/bench/setup.sh)",
            py.display()
        ))
    }
}

fn read_logits(path: &Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const TOKENS: &str = "3,17,42,7,99,128,5,64,250,11";

/// The Python env with `modules` importable, or `None` after saying why the test is skipped.
fn python_with(modules: &str) -> Option<PathBuf> {
    let py = match peft_python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("skipped: {why}");
            return None;
        }
    };
    let ok = Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: no `{modules}` in {}", py.display());
        return None;
    }
    Some(py)
}

/// Run one of `tests/interop/*.py` (one thread); its last stdout line parsed as JSON.
fn python_json(py: &Path, script: &str, args: &[&str]) -> serde_json::Value {
    let o = Command::new(py)
        .arg(crate::root().join("tests/interop").join(script))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{script} {args:?}: {}", text(&o));
    let last = o.stdout.split(|b| *b == b'\n').rfind(|l| !l.is_empty());
    last.and_then(|l| serde_json::from_slice(l).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// `rora model logits MODEL_DIR [--adapter DIR] --tokens TOKENS --out OUT`, read back.
fn rora_logits(cache: &Path, model_dir: &Path, adapter: Option<&Path>, out: &Path) -> Vec<f32> {
    let mut args = vec!["model", "logits", model_dir.to_str().unwrap()];
    if let Some(a) = adapter {
        args.extend(["--adapter", a.to_str().unwrap()]);
    }
    args.extend(["--tokens", TOKENS, "--out", out.to_str().unwrap()]);
    let o = rora(&args, cache);
    assert!(o.status.success(), "{}", text(&o));
    read_logits(out, "logits")
}

/// Run `stages` beside a random tiny model "tiny" (2 layers, 4 heads, 2 KV heads, `seed`) and the
/// shipped commonsense rows as data "cs" (max-len 64, 16 rows) in a fresh cache under `dir`: the
/// cache, the pipeline file and the model's HF folder.
fn run_tiny(dir: &Path, seed: u64, stages: &str) -> (PathBuf, PathBuf, PathBuf) {
    let cache = dir.join("cache");
    let p = dir.join("p.kdl");
    std::fs::write(
        &p,
        format!(
            "model \"tiny\" {{\n    random layers=2 hidden=64 heads=4 kv-heads=2 ffn=128 seed={seed}\n}}\n\
             data \"cs\" {{\n    files \"{}/*.train.jsonl\"\n    template \"llm-adapters\"\n    max-len 64\n    limit 16\n}}\n{stages}",
            crate::root().join("datasets/commonsense").display()
        ),
    )
    .unwrap();
    let o = rora(&["run", p.to_str().unwrap()], &cache);
    assert!(o.status.success(), "{}", text(&o));
    let model_dir = output_dir(&cache, "tiny", &p).join("model");
    (cache, p, model_dir)
}

/// PEFT 0.21.2 raises one warning on every load with transformers 5.24, about its own API; none
/// may be about the folder (keys not applied, unknown fields, ...).
fn assert_only_api_warnings(report: &serde_json::Value, what: &str) {
    for w in report["warnings"].as_array().unwrap() {
        assert!(
            w.as_str().unwrap().contains("is_gradient_checkpointing"),
            "{what}: {w}"
        );
    }
}

#[test]
fn adapters_peft_trained_match_peft_logits_in_a_rora_pipeline() {
    let Some(py) = python_with("torch, transformers, peft") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // The base: rora's random tiny LLaMA, saved as an HF folder by its model stage.
    let model =
        "model \"tiny\" {\n    random layers=2 hidden=64 heads=4 kv-heads=2 ffn=128 seed=11\n}\n";
    let base_p = dir.path().join("base.kdl");
    std::fs::write(&base_p, model).unwrap();
    let o = rora(&["run", base_p.to_str().unwrap()], &cache);
    assert!(o.status.success(), "{}", text(&o));
    let model_dir = output_dir(&cache, "tiny", &base_p).join("model");
    let m = model_dir.to_str().unwrap();

    // transformers loads the folder without a warning, with rora's logits.
    let theirs = dir.path().join("transformers-logits.safetensors");
    let report = python_json(
        &py,
        "load_folder.py",
        &[m, TOKENS, theirs.to_str().unwrap()],
    );
    assert_eq!(report["warnings"], serde_json::json!([]), "{report}");
    assert_eq!(report["dtype"], "torch.float32");
    assert!(
        report["bos"].is_string() && report["eos"].is_string(),
        "{report}"
    );
    let ours = rora_logits(
        &cache,
        &model_dir,
        None,
        &dir.path().join("rora.safetensors"),
    );
    let d = max_diff(&ours, &read_logits(&theirs, "logits"));
    assert!(d < 1e-4, "base logits differ from transformers' by {d}");
    eprintln!("base: rora = transformers within {d:.1e}; no load warnings");

    for kind in ["lora", "rslora", "dora", "patterns", "regex"] {
        let out = dir.path().join(kind);
        python_json(
            &py,
            "peft_adapter.py",
            &[m, out.to_str().unwrap(), kind, TOKENS],
        );
        let peft_logits = out.join("logits.safetensors");

        // Unmerged: the folder installed on the base.
        let adapter = out.join("adapter");
        let ours = rora_logits(
            &cache,
            &model_dir,
            Some(&adapter),
            &out.join("u.safetensors"),
        );
        let du = max_diff(&ours, &read_logits(&peft_logits, "unmerged"));
        assert!(
            du < 1e-4,
            "{kind}: unmerged logits differ from PEFT's by {du}"
        );

        // Through a pipeline: the adapter stage loads the folder, the merge folds it in.
        let p = out.join("p.kdl");
        std::fs::write(
            &p,
            format!(
                "model \"base\" {{\n    path \"{}\"\n}}\nadapter \"theirs\" model=\"base\" {{\n    path \"adapter\"\n}}\nmerge \"m\" from=\"theirs\"\n",
                model_dir.display()
            ),
        )
        .unwrap();
        let o = rora(&["run", p.to_str().unwrap()], &cache);
        assert!(o.status.success(), "{kind}: {}", text(&o));
        let merged_dir = output_dir(&cache, "m", &p).join("model");
        let merged = rora_logits(&cache, &merged_dir, None, &out.join("m.safetensors"));
        let d = max_diff(&merged, &read_logits(&peft_logits, "merged"));
        assert!(d < 1e-4, "{kind}: merged logits differ from PEFT's by {d}");
        eprintln!("{kind}: rora = PEFT within {du:.1e} unmerged, {d:.1e} merged");
    }
}

// The other way: adapters rora trains (rsLoRA and DoRA scale, alpha != r) load in PEFT
// (`PeftModel.from_pretrained`) with rora's logits.
#[test]
fn adapters_rora_trained_load_in_peft_with_rora_logits() {
    let Some(py) = python_with("torch, transformers, peft") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cache, p, model_dir) = run_tiny(
        dir.path(),
        12,
        "sweep method \"lora\" \"dora\"\n\
         adapter \"ad\" model=\"tiny\" {\n    method (sweep)\"method\"\n    scaling \"rora\"\n    rank 4\n    alpha 6\n    targets \"q_proj\" \"v_proj\" \"down_proj\"\n}\n\
         train \"ft\" adapter=\"ad\" data=\"cs\" {\n    steps 3\n    batch 4\n    lr 5e-2\n}\n",
    );
    let out = |job: &str| output_dir(&cache, job, &p);
    for method in ["lora", "dora"] {
        let adapter = out(&format!("ft@method={method}")).join("adapter");
        let card = std::fs::read_to_string(adapter.join("README.md")).unwrap();
        assert!(card.starts_with("---\nlibrary_name: peft\n"), "{card}");
        let theirs = dir.path().join(format!("{method}-peft.safetensors"));
        let report = python_json(
            &py,
            "peft_load.py",
            &[
                model_dir.to_str().unwrap(),
                adapter.to_str().unwrap(),
                TOKENS,
                theirs.to_str().unwrap(),
            ],
        );
        assert_only_api_warnings(&report, method);
        assert_eq!(report["use_rslora"], true, "{report}");
        assert_eq!(report["use_dora"], method == "dora", "{report}");
        assert_eq!(
            (report["r"].as_u64(), report["lora_alpha"].as_f64()),
            (Some(4), Some(6.0))
        );
        let ours = rora_logits(
            &cache,
            &model_dir,
            Some(&adapter),
            &dir.path().join(format!("{method}-rora.safetensors")),
        );
        let d = max_diff(&ours, &read_logits(&theirs, "logits"));
        assert!(
            d < 1e-4,
            "{method}: PEFT's logits differ from rora's by {d}"
        );
        eprintln!(
            "{method} (rora-trained, PEFT-loaded): within {d:.1e}; PEFT warnings {}",
            report["warnings"]
        );
    }
}

// TensorBoard's own reader (EventAccumulator) reads a train stage's event file: every step of
// metrics.jsonl under HF Trainer's tags. Needs the `tensorboard` package beside torch
// (`pip install tensorboard` into the env); skipped without it.
#[test]
fn tensorboard_reads_the_train_stage_events() {
    let Some(py) = python_with("tensorboard") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = dir.path().join("p.kdl");
    std::fs::write(
        &p,
        format!(
            "model \"tiny\" {{\n    random layers=1 hidden=32 heads=2 kv-heads=1 ffn=64 seed=3\n}}\n\
             data \"cs\" {{\n    files \"{}/*.train.jsonl\"\n    template \"llm-adapters\"\n    max-len 64\n    limit 40\n    validation 8\n}}\n\
             adapter \"ad\" model=\"tiny\" {{\n    rank 2\n    alpha 4\n}}\n\
             train \"ft\" adapter=\"ad\" data=\"cs\" {{\n    steps 4\n    batch 4\n    eval-every 2\n}}\n",
            crate::root().join("datasets/commonsense").display()
        ),
    )
    .unwrap();
    let o = rora(&["run", p.to_str().unwrap()], &cache);
    assert!(o.status.success(), "{}", text(&o));
    let out = output_dir(&cache, "ft", &p);
    let runs = out.join("runs");
    let tb = python_json(&py, "read_events.py", &[runs.to_str().unwrap()]);
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let train: Vec<&serde_json::Value> = rows.iter().filter(|r| r["kind"] == "train").collect();
    assert_eq!(train.len(), 4);
    for (tag, key) in [
        ("train/loss", "loss"),
        ("train/learning_rate", "lr"),
        ("train/grad_norm", "grad_norm"),
        ("train/epoch", "epoch"),
    ] {
        let got = tb[tag].as_array().unwrap_or_else(|| panic!("{tag}: {tb}"));
        assert_eq!(got.len(), train.len(), "{tag}");
        for (g, r) in got.iter().zip(&train) {
            assert_eq!(g[0], r["step"], "{tag}");
            let (a, b) = (g[1].as_f64().unwrap(), r[key].as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
                "{tag}: {a} vs {b}"
            );
        }
    }
    let evals: Vec<&serde_json::Value> = rows.iter().filter(|r| r["kind"] == "eval").collect();
    assert!(!evals.is_empty(), "{metrics}");
    assert_eq!(
        tb["eval/loss"].as_array().map(Vec::len),
        Some(evals.len()),
        "{tb}"
    );
}

// Parquet files pyarrow writes, in every codec it offers (snappy, gzip, zstd, lz4, brotli,
// none), feed a data stage the same rows; needs pyarrow in the env, skipped without it.
#[test]
fn parquet_from_pyarrow_in_every_codec_feeds_the_data_stage() {
    let Some(py) = python_with("pyarrow") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let rows = dir.path().join("rows.jsonl");
    let lines: String =
        std::fs::read_to_string(crate::root().join("datasets/commonsense/boolq.train.jsonl"))
            .unwrap()
            .lines()
            .take(20)
            .map(|l| format!("{l}\n"))
            .collect();
    std::fs::write(&rows, lines).unwrap();
    python_json(
        &py,
        "write_parquet.py",
        &[
            rows.to_str().unwrap(),
            dir.path().to_str().unwrap(),
            "boolq",
        ],
    );
    let mut tokens_keys = std::collections::BTreeSet::new();
    for codec in ["snappy", "gzip", "zstd", "lz4", "brotli", "none"] {
        let p = dir.path().join(format!("{codec}.kdl"));
        std::fs::write(
            &p,
            format!(
                "model \"tiny\" {{\n    random layers=1 hidden=32 heads=2 kv-heads=1 ffn=64 seed=3\n}}\n\
                 data \"cs\" {{\n    files \"{codec}/*.parquet\"\n    template \"llm-adapters\"\n    max-len 64\n}}\n\
                 adapter \"ad\" model=\"tiny\" {{\n    rank 2\n}}\n\
                 train \"ft\" adapter=\"ad\" data=\"cs\" {{\n    steps 1\n    batch 2\n}}\n"
            ),
        )
        .unwrap();
        let o = rora(&["run", p.to_str().unwrap()], &cache);
        assert!(o.status.success(), "{codec}: {}", text(&o));
        let shown = show_output(&cache, "cs", &p);
        assert_eq!(
            shown["summary"]["rows_per_task"]["boolq"], 20,
            "{codec}: {shown}"
        );
        let shown = show_output(&cache, "ft", &p);
        tokens_keys.insert(shown["summary"]["final_loss"].to_string());
    }
    assert_eq!(
        tokens_keys.len(),
        1,
        "every codec trains on the same rows: {tokens_keys:?}"
    );
}

// The SentencePiece reference tokenizer.json (tests/fixtures/spm/) is what transformers' own GGUF
// reader derives for the tiny vocabulary, in LLaMA-2's layout: regenerated here, it is equal.
#[test]
fn spm_reference_is_what_transformers_derives() {
    let Some(py) = python_with("transformers, tokenizers") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tokenizer.json");
    python_json(&py, "spm_reference.py", &[out.to_str().unwrap()]);
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    assert_eq!(
        read(&out),
        read(&crate::root().join("tests/fixtures/spm/tokenizer.json"))
    );
}

// Bottleneck adapters rora trains load as LLM-Adapters loads them (its adapter_model.bin through
// torch.load with the safe unpickler, its module matching and forward: tests/interop/
// bottleneck_load.py), with rora's logits: series before gate/up and after down with a learned
// scale, parallel with gelu and a fixed scale != 1.
#[test]
fn bottleneck_adapters_load_as_llm_adapters_loads_them_with_rora_logits() {
    let Some(py) = python_with("torch, transformers") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cache, p, model_dir) = run_tiny(
        dir.path(),
        12,
        "adapter \"series\" model=\"tiny\" {\n    method \"series\"\n    bottleneck 8 learn-scale=#true\n    targets \"gate_proj\" \"up_proj\" \"down_proj\"\n}\n\
         adapter \"parallel\" model=\"tiny\" {\n    method \"parallel\"\n    bottleneck 8 non-linearity=\"gelu\" scale=0.5\n}\n\
         train \"ft-series\" adapter=\"series\" data=\"cs\" {\n    steps 3\n    batch 4\n    lr 5e-2\n}\n\
         train \"ft-parallel\" adapter=\"parallel\" data=\"cs\" {\n    steps 3\n    batch 4\n    lr 5e-2\n}\n",
    );
    let out = |job: &str| output_dir(&cache, job, &p);
    for (method, modules) in [("series", 6), ("parallel", 4)] {
        let adapter = out(&format!("ft-{method}")).join("adapter");
        let theirs = dir.path().join(format!("{method}-la.safetensors"));
        let report = python_json(
            &py,
            "bottleneck_load.py",
            &[
                model_dir.to_str().unwrap(),
                adapter.to_str().unwrap(),
                TOKENS,
                theirs.to_str().unwrap(),
            ],
        );
        assert_eq!(
            report["modules"].as_array().map(Vec::len),
            Some(modules),
            "{report}"
        );
        let ours = rora_logits(
            &cache,
            &model_dir,
            Some(&adapter),
            &dir.path().join(format!("{method}-rora.safetensors")),
        );
        let base = rora_logits(
            &cache,
            &model_dir,
            None,
            &dir.path().join(format!("{method}-base.safetensors")),
        );
        assert!(
            max_diff(&ours, &base) > 1e-3,
            "{method}: the adapter changes nothing"
        );
        let d = max_diff(&ours, &read_logits(&theirs, "logits"));
        assert!(
            d < 1e-4,
            "{method}: LLM-Adapters' logits differ from rora's by {d}"
        );
        eprintln!("{method} (rora-trained, LLM-Adapters-loaded): within {d:.1e}; {report}");
    }
}

// Prefix tuning both ways on a grouped-query model (4 heads, 2 KV heads): a prefix PEFT trains
// loads into rora (`rora model logits --adapter`) with PEFT's logits, and a prefix rora trains
// loads in PEFT (`PeftModel.from_pretrained`) with rora's logits.
#[test]
fn prefix_tuning_moves_both_ways_between_peft_and_rora() {
    let Some(py) = python_with("torch, transformers, peft") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cache, p, model_dir) = run_tiny(
        dir.path(),
        13,
        "adapter \"ad\" model=\"tiny\" {\n    method \"prefix\"\n    virtual-tokens 6\n}\n\
         train \"ft\" adapter=\"ad\" data=\"cs\" {\n    steps 3\n    batch 4\n    lr 5e-2\n}\n",
    );
    let m = model_dir.to_str().unwrap();

    // PEFT -> rora
    let out = dir.path().join("peft");
    let report = python_json(&py, "prefix_peft.py", &[m, out.to_str().unwrap(), TOKENS]);
    assert_eq!(
        (
            report["token_dim"].as_u64(),
            report["num_attention_heads"].as_u64()
        ),
        (Some(32), Some(2)),
        "PEFT sizes the prefix by KV heads: {report}"
    );
    let ours = rora_logits(
        &cache,
        &model_dir,
        Some(&out.join("adapter")),
        &out.join("rora.safetensors"),
    );
    let d = max_diff(
        &ours,
        &read_logits(&out.join("logits.safetensors"), "logits"),
    );
    assert!(
        d < 1e-4,
        "PEFT-trained prefix: rora's logits differ from PEFT's by {d}"
    );
    eprintln!("prefix (PEFT-trained, rora-loaded): within {d:.1e}");

    // rora -> PEFT
    let adapter = output_dir(&cache, "ft", &p).join("adapter");
    let theirs = dir.path().join("rora-prefix-peft.safetensors");
    let report = python_json(
        &py,
        "peft_load.py",
        &[
            m,
            adapter.to_str().unwrap(),
            TOKENS,
            theirs.to_str().unwrap(),
        ],
    );
    assert_only_api_warnings(&report, "prefix");
    assert_eq!(report["num_virtual_tokens"], 6, "{report}");
    let ours = rora_logits(
        &cache,
        &model_dir,
        Some(&adapter),
        &dir.path().join("r.safetensors"),
    );
    let base = rora_logits(&cache, &model_dir, None, &dir.path().join("b.safetensors"));
    assert!(max_diff(&ours, &base) > 1e-3, "the prefix changes nothing");
    let d = max_diff(&ours, &read_logits(&theirs, "logits"));
    assert!(
        d < 1e-4,
        "rora-trained prefix: PEFT's logits differ from rora's by {d}"
    );
    eprintln!("prefix (rora-trained, PEFT-loaded): within {d:.1e}; {report}");
}
