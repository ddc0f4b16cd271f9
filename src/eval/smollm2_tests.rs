//! With the SmolLM2 asset (RORA_SHARED_DIR, default ../shared): zero-shot loglik on a seeded PIQA
//! subset through rora's own GGUF loader (`model::load`), `model::Llama` and the eval code.
//!
//! `RORA_LOGLIK_DUMP=<file>` writes every request's token ids and score for
//! `scripts/loglik_numpy.py`, an independent numpy forward over the same GGUF (llama.cpp layout,
//! interleaved RoPE, its own dequantisation through the `gguf` package). `RORA_PIQA_LIMIT`
//! changes the subset size (default 150).

use std::io::Write;
use std::path::PathBuf;

use super::loglik::prompt::requests;
use super::loglik::score::encode_pair;
use super::*;
use crate::model::{LoadOptions, ModelSource, load};

fn shared_dir() -> PathBuf {
    std::env::var_os("RORA_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

#[test]
#[ignore = "needs the SmolLM2 asset; about a minute on 2 CPU cores"]
fn smollm2_piqa_loglik_above_chance() {
    let assets = shared_dir().join("assets");
    let gguf = assets.join("models/smollm2-135m-instruct-q4_1.gguf");
    let piqa = assets.join("commonsense/piqa.eval.jsonl.gz");
    if !gguf.is_file() || !piqa.is_file() {
        eprintln!(
            "SKIP smollm2_piqa_loglik_above_chance: {} or {} missing (set RORA_SHARED_DIR)",
            gguf.display(),
            piqa.display()
        );
        return;
    }
    let loaded = load(&ModelSource::Gguf(gguf), &LoadOptions::default()).unwrap();
    let codec = TextCodec::new(
        &loaded.tokenizer,
        &loaded.special.eos,
        loaded.special.pad_id(),
    );
    let task = Task {
        name: "piqa".into(),
        kind: TaskKind::Piqa,
        path: piqa,
    };
    let limit = std::env::var("RORA_PIQA_LIMIT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let mut cfg = EvalConfig::new(vec![task.clone()], Protocol::Loglik);
    cfg.limit = Some(limit);
    let started = std::time::Instant::now();
    let res = evaluate(&loaded.model, &codec, &cfg, &mut no_progress).unwrap();
    let secs = started.elapsed().as_secs_f64();
    let t = &res.summary.tasks[0];
    eprintln!(
        "smollm2 piqa loglik: n={} acc={:.3} acc_norm={:.3} in {:.1}s ({:.2} items/s)",
        t.n,
        t.accuracy,
        t.acc_norm.unwrap_or(0.0),
        secs,
        t.n as f64 / secs
    );
    if let Some(dump) = std::env::var_os("RORA_LOGLIK_DUMP") {
        let items = task.load().unwrap();
        let chosen = subsample::subsample_indices(items.len(), cfg.limit, cfg.seed);
        let mut w = std::fs::File::create(dump).unwrap();
        for (k, (&i, pred)) in chosen.iter().zip(&res.predictions["piqa"]).enumerate() {
            let Prediction::Loglik(p) = pred else {
                panic!("loglik prediction")
            };
            for (c, r) in requests(TaskKind::Piqa, &items[i])
                .unwrap()
                .iter()
                .enumerate()
            {
                let e = encode_pair(&codec, r).unwrap();
                let line = serde_json::json!({"item": k, "choice": c, "label": p.label,
                    "context": e.context, "continuation": e.continuation, "loglik": p.scores[c]});
                writeln!(w, "{line}").unwrap();
            }
        }
    }
    assert_eq!(t.n, limit.min(1838));
    // Chance is 0.5; SmolLM2-135M is reported around 0.68 on PIQA (acc, lm-eval). With 150 items
    // the standard error is about 0.04, so 0.6 is well above chance and well below the expected.
    assert!(
        t.accuracy >= 0.6,
        "PIQA acc {} is not well above chance",
        t.accuracy
    );
}

/// The rora side of `scripts/bench_eval.sh`: loglik scoring of a seeded subset of a commonsense
/// task (`RORA_BENCH_TASK`, default piqa; `RORA_BENCH_ITEMS`, default 100) and greedy generation
/// of the llm-adapters prompts of the first `RORA_BENCH_GEN` (default 16) of those items, batch
/// `RORA_BENCH_BATCH` (default 8), 32 new tokens, greedy or `RORA_BENCH_BEAMS` beams (HF's beam search). Writes into
/// `RORA_BENCH_OUT`: the model as an HF dir (`hf/`, so transformers scores identical weights),
/// `loglik.jsonl`, `generate.jsonl` and `rora.json` (timings); `scripts/bench_eval.py` reads them.
#[test]
#[ignore = "benchmark; needs the SmolLM2 asset and RORA_BENCH_OUT"]
fn smollm2_eval_bench() {
    use super::generate::generate;
    use super::llm_adapters::prompt::{eval_prompt, instruction};

    let assets = shared_dir().join("assets");
    let gguf = assets.join("models/smollm2-135m-instruct-q4_1.gguf");
    let task_name = std::env::var("RORA_BENCH_TASK").unwrap_or_else(|_| "piqa".into());
    let Some(kind) = super::task::commonsense_kind(&task_name) else {
        panic!("RORA_BENCH_TASK `{task_name}` is not a commonsense task");
    };
    let task_file = assets.join(format!("commonsense/{task_name}.eval.jsonl.gz"));
    let Some(out) = std::env::var_os("RORA_BENCH_OUT").map(PathBuf::from) else {
        eprintln!("SKIP smollm2_eval_bench: set RORA_BENCH_OUT to a directory");
        return;
    };
    if !gguf.is_file() || !task_file.is_file() {
        eprintln!(
            "SKIP smollm2_eval_bench: {} or {} missing",
            gguf.display(),
            task_file.display()
        );
        return;
    }
    let env_usize = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (n_items, n_gen, batch, max_new) = (
        env_usize("RORA_BENCH_ITEMS", 100),
        env_usize("RORA_BENCH_GEN", 16),
        env_usize("RORA_BENCH_BATCH", 8),
        32,
    );
    std::fs::create_dir_all(&out).unwrap();
    let loaded = load(&ModelSource::Gguf(gguf), &LoadOptions::default()).unwrap();
    if !out.join("hf/config.json").is_file() {
        loaded.save_hf_dir(&out.join("hf")).unwrap();
    }
    let codec = TextCodec::new(
        &loaded.tokenizer,
        &loaded.special.eos,
        loaded.special.pad_id(),
    );
    let task = Task {
        name: task_name.clone(),
        kind,
        path: task_file,
    };
    let mut cfg = EvalConfig::new(vec![task.clone()], Protocol::Loglik);
    cfg.limit = Some(n_items);
    cfg.batch_size = batch;
    let started = std::time::Instant::now();
    let res = evaluate(&loaded.model, &codec, &cfg, &mut no_progress).unwrap();
    let loglik_s = started.elapsed().as_secs_f64();
    let items = task.load().unwrap();
    let chosen = subsample::subsample_indices(items.len(), cfg.limit, cfg.seed);
    let mut w = std::fs::File::create(out.join("loglik.jsonl")).unwrap();
    for (k, (&i, pred)) in chosen
        .iter()
        .zip(&res.predictions[task_name.as_str()])
        .enumerate()
    {
        let Prediction::Loglik(p) = pred else {
            panic!("loglik prediction")
        };
        for (c, r) in requests(kind, &items[i]).unwrap().iter().enumerate() {
            let e = encode_pair(&codec, r).unwrap();
            let line = serde_json::json!({"item": k, "choice": c, "label": p.label,
                "context": e.context, "continuation": e.continuation, "loglik": p.scores[c]});
            writeln!(w, "{line}").unwrap();
        }
    }
    // RORA_BENCH_BASELINE=1: also time the independent path (every choice runs its own context,
    // logits at every position; what `evaluate` did before context sharing) on the same requests.
    let mut baseline = serde_json::Value::Null;
    if std::env::var("RORA_BENCH_BASELINE").is_ok_and(|v| v == "1") {
        let encoded: Vec<_> = chosen
            .iter()
            .flat_map(|&i| requests(kind, &items[i]).unwrap())
            .map(|r| encode_pair(&codec, &r).unwrap())
            .collect();
        let started = std::time::Instant::now();
        let independent = super::loglik::score::score_requests(
            &loaded.model,
            &encoded,
            batch,
            cfg.max_len,
            codec.pad_id,
        )
        .unwrap();
        let secs = started.elapsed().as_secs_f64();
        let shared: Vec<f64> = res.predictions[task_name.as_str()]
            .iter()
            .flat_map(|p| match p {
                Prediction::Loglik(p) => p.scores.clone(),
                _ => panic!("loglik prediction"),
            })
            .collect();
        let max_diff = independent
            .iter()
            .zip(&shared)
            .map(|(a, b)| (a.loglik - b).abs())
            .fold(0.0, f64::max);
        baseline = serde_json::json!({"independent_loglik_s": secs,
            "shared_speedup": secs / loglik_s, "max_abs_diff_shared_vs_independent": max_diff});
    }
    // Generation: the llm-adapters prompts, longest first in batches (as the protocol runs them).
    let prompts: Vec<Vec<u32>> = chosen
        .iter()
        .take(n_gen)
        .map(|&i| {
            codec
                .encode(&eval_prompt(&instruction(kind, &items[i])), true)
                .unwrap()
        })
        .collect();
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(prompts[i].len()), i));
    let gen_cfg = GenerationConfig {
        max_new_tokens: max_new,
        num_beams: env_usize("RORA_BENCH_BEAMS", 1).max(1),
        ..GenerationConfig::default()
    };
    let mut generated = vec![Vec::new(); prompts.len()];
    let started = std::time::Instant::now();
    for chunk in order.chunks(batch) {
        let b: Vec<Vec<u32>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
        let g = generate(&loaded.model, &b, codec.eos_ids, codec.pad_id, &gen_cfg).unwrap();
        for (&i, g) in chunk.iter().zip(g) {
            generated[i] = g.tokens;
        }
    }
    let gen_s = started.elapsed().as_secs_f64();
    let gen_tokens: usize = generated.iter().map(Vec::len).sum();
    let mut w = std::fs::File::create(out.join("generate.jsonl")).unwrap();
    for (p, g) in prompts.iter().zip(&generated) {
        writeln!(w, "{}", serde_json::json!({"prompt": p, "tokens": g})).unwrap();
    }
    let t = &res.summary.tasks[0];
    let summary = serde_json::json!({
        "task": task_name, "loglik_items": t.n, "loglik_s": loglik_s, "acc": t.accuracy,
        "gen_prompts": prompts.len(), "gen_tokens": gen_tokens, "gen_s": gen_s,
        "batch_size": batch, "max_new_tokens": max_new, "num_beams": gen_cfg.num_beams,
        "eos_ids": loaded.special.eos, "pad_id": codec.pad_id,
        "rayon_threads": rayon::current_num_threads(), "baseline": baseline,
    });
    std::fs::write(out.join("rora.json"), summary.to_string()).unwrap();
    eprintln!("{summary}");
    assert_eq!(t.n, n_items.min(items.len()));
    assert!(gen_tokens > 0, "greedy generation produced no tokens");
}
