//! `rora bench eval`: the rora side of `scripts/bench_eval.sh`. Loglik scoring of a seeded subset
//! of a commonsense task's eval split and generation (greedy, or beam search with HF semantics) of
//! the llm-adapters prompts of the first of those items, on a GGUF model. It writes into `--out`
//! the model as an HF dir (`hf/`, so transformers scores identical weights), `loglik.jsonl`,
//! `generate.jsonl` (token ids and scores of every request and prompt) and `rora.json` (timings,
//! also printed); `scripts/bench_eval.py` runs transformers on the same ids and compares.
//! Threads: set `RAYON_NUM_THREADS` (reported).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use miette::{IntoDiagnostic, Result, WrapErr, miette};
use serde_json::json;

use crate::eval::generate::{GenerationConfig, generate};
use crate::eval::llm_adapters::prompt::{eval_prompt, instruction};
use crate::eval::loglik::prompt::requests;
use crate::eval::loglik::score::{encode_pair, score_requests};
use crate::eval::results::Prediction;
use crate::eval::task::commonsense_kind;
use crate::eval::{EvalConfig, Protocol, Task, TextCodec, evaluate, no_progress, subsample};
use crate::model::{LoadOptions, ModelSource, load};

#[derive(Debug, Args)]
pub struct EvalBench {
    /// The model (a GGUF file, e.g. SmolLM2-135M-Instruct from ../shared/assets/models).
    #[arg(long)]
    pub gguf: PathBuf,
    /// A commonsense task (its `<task>.eval.jsonl[.gz]` is read from `--data`).
    #[arg(long, default_value = "piqa")]
    pub task: String,
    /// Directory of the task files (default: ../shared/assets/commonsense, or $RORA_SHARED_DIR/assets/commonsense).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Items scored by log-likelihood (a seeded subset, as the eval stage's `limit`).
    #[arg(long, default_value_t = 100)]
    pub items: usize,
    /// Prompts generated for (the first of the scored items).
    #[arg(long, default_value_t = 16)]
    pub prompts: usize,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Beam width of generation (1: greedy).
    #[arg(long, default_value_t = 1)]
    pub beams: usize,
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    /// Also time the independent loglik path (every choice with its own context, logits at every
    /// position) on the same requests, and compare its scores.
    #[arg(long)]
    pub baseline: bool,
    /// Where the files go (created).
    #[arg(long)]
    pub out: PathBuf,
}

fn task_file(a: &EvalBench) -> PathBuf {
    let dir = a.data.clone().unwrap_or_else(|| {
        std::env::var_os("RORA_SHARED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("../shared"))
            .join("assets/commonsense")
    });
    let gz = dir.join(format!("{}.eval.jsonl.gz", a.task));
    if gz.is_file() {
        gz
    } else {
        dir.join(format!("{}.eval.jsonl", a.task))
    }
}

/// Run the benchmark; returns the summary JSON (also written to `rora.json`).
pub fn bench_eval(a: &EvalBench) -> Result<serde_json::Value> {
    let kind = commonsense_kind(&a.task)
        .ok_or_else(|| miette!("`{}` is not a commonsense task", a.task))?;
    let task_path = task_file(a);
    if !a.gguf.is_file() || !task_path.is_file() {
        return Err(miette!(
            "{} or {} does not exist",
            a.gguf.display(),
            task_path.display()
        ));
    }
    let out = &a.out;
    std::fs::create_dir_all(out).into_diagnostic()?;
    let io = |p: &std::path::Path| format!("writing {}", p.display());
    let loaded = load(&ModelSource::Gguf(a.gguf.clone()), &LoadOptions::default())
        .into_diagnostic()
        .wrap_err("loading the model")?;
    if !out.join("hf/config.json").is_file() {
        loaded.save_hf_dir(&out.join("hf")).into_diagnostic()?;
    }
    let codec = TextCodec::new(
        &loaded.tokenizer,
        &loaded.special.eos,
        loaded.special.pad_id(),
    );
    let mut task = Task::from_file(&task_path);
    task.name = a.task.clone();
    let mut cfg = EvalConfig::new(vec![task.clone()], Protocol::Loglik);
    cfg.limit = Some(a.items);
    cfg.batch_size = a.batch.max(1);
    let started = Instant::now();
    let res = evaluate(&loaded.model, &codec, &cfg, &mut no_progress).into_diagnostic()?;
    let loglik_s = started.elapsed().as_secs_f64();
    let items = task.load().into_diagnostic()?;
    let chosen = subsample::subsample_indices(items.len(), cfg.limit, cfg.seed);
    let preds = &res.predictions[a.task.as_str()];
    let path = out.join("loglik.jsonl");
    let mut w = std::fs::File::create(&path)
        .into_diagnostic()
        .wrap_err(io(&path))?;
    for (k, (&i, pred)) in chosen.iter().zip(preds).enumerate() {
        let Prediction::Loglik(p) = pred else {
            return Err(miette!("a loglik run gave a generation prediction"));
        };
        let reqs = requests(kind, &items[i]).map_err(|e| miette!("{e}"))?;
        for (c, r) in reqs.iter().enumerate() {
            let e = encode_pair(&codec, r).into_diagnostic()?;
            let line = json!({"item": k, "choice": c, "label": p.label,
                "context": e.context, "continuation": e.continuation, "loglik": p.scores[c]});
            writeln!(w, "{line}").into_diagnostic()?;
        }
    }
    let mut baseline = serde_json::Value::Null;
    if a.baseline {
        let mut encoded = Vec::new();
        for &i in &chosen {
            for r in requests(kind, &items[i]).map_err(|e| miette!("{e}"))? {
                encoded.push(encode_pair(&codec, &r).into_diagnostic()?);
            }
        }
        let started = Instant::now();
        let independent = score_requests(
            &loaded.model,
            &encoded,
            cfg.batch_size,
            cfg.max_len,
            codec.pad_id,
        )
        .into_diagnostic()?;
        let secs = started.elapsed().as_secs_f64();
        let shared: Vec<f64> = preds
            .iter()
            .flat_map(|p| match p {
                Prediction::Loglik(p) => p.scores.clone(),
                _ => Vec::new(),
            })
            .collect();
        let max_diff = independent
            .iter()
            .zip(&shared)
            .map(|(a, b)| (a.loglik - b).abs())
            .fold(0.0, f64::max);
        baseline = json!({"independent_loglik_s": secs,
            "shared_speedup": secs / loglik_s, "max_abs_diff_shared_vs_independent": max_diff});
    }
    // Generation: the llm-adapters prompts, longest first in batches (as the protocol runs them).
    let mut prompts: Vec<Vec<u32>> = Vec::new();
    for &i in chosen.iter().take(a.prompts) {
        let text = eval_prompt(&instruction(kind, &items[i]));
        prompts.push(codec.encode(&text, true).into_diagnostic()?);
    }
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(prompts[i].len()), i));
    let gen_cfg = GenerationConfig {
        max_new_tokens: a.max_new_tokens,
        num_beams: a.beams.max(1),
        ..GenerationConfig::default()
    };
    let mut generated = vec![Vec::new(); prompts.len()];
    let started = Instant::now();
    for chunk in order.chunks(cfg.batch_size) {
        let b: Vec<Vec<u32>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
        let g =
            generate(&loaded.model, &b, codec.eos_ids, codec.pad_id, &gen_cfg).into_diagnostic()?;
        for (&i, g) in chunk.iter().zip(g) {
            generated[i] = g.tokens;
        }
    }
    let gen_s = started.elapsed().as_secs_f64();
    let gen_tokens: usize = generated.iter().map(Vec::len).sum();
    let path = out.join("generate.jsonl");
    let mut w = std::fs::File::create(&path)
        .into_diagnostic()
        .wrap_err(io(&path))?;
    for (p, g) in prompts.iter().zip(&generated) {
        writeln!(w, "{}", json!({"prompt": p, "tokens": g})).into_diagnostic()?;
    }
    let t = &res.summary.tasks[0];
    let summary = json!({
        "task": a.task, "loglik_items": t.n, "loglik_s": loglik_s, "acc": t.accuracy,
        "gen_prompts": prompts.len(), "gen_tokens": gen_tokens, "gen_s": gen_s,
        "batch_size": cfg.batch_size, "max_new_tokens": a.max_new_tokens, "num_beams": gen_cfg.num_beams,
        "eos_ids": loaded.special.eos, "pad_id": codec.pad_id,
        "rayon_threads": rayon::current_num_threads(), "baseline": baseline,
    });
    std::fs::write(out.join("rora.json"), summary.to_string()).into_diagnostic()?;
    Ok(summary)
}
