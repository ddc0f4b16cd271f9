//! Micro-benchmarks of rora's building blocks, printed one line each (not a test; nothing here
//! asserts a speed). `docs/BENCHMARKS.md` quotes them.
//!
//!     RAYON_NUM_THREADS=2 cargo bench --bench micro            # every measurement
//!     RAYON_NUM_THREADS=2 cargo bench --bench micro -- frozen  # the ones whose name contains `frozen`
//!
//! Measurements: `forward-tiny`, `forward-smollm2` (needs the SmolLM2 GGUF under
//! `$RORA_SHARED_DIR/assets`, default `../shared/assets`), `projection` (one adapted projection,
//! forward + backward, SmolLM2 attention shape), `frozen` (the frozen matmul's backward against a
//! plain matmul, SmolLM2 MLP shape), `loss` (fused cross-entropy against the composed one on the
//! SmolLM2 logits shape, CPU seconds), `data-profile` (read + parse + render vs tokenize on the
//! shipped subsets, CPU seconds), `data-full` (the full shared commonsense train files).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor, Var};

use rora::adapter::init::uniform_tensor;
use rora::adapter::{AdapterConfig, Linear, Method, ScalingRule, Targets, attach, set_training};
use rora::cpu::frozen::frozen_linear;
use rora::lm::CausalLm;
use rora::model::llama::Llama;
use rora::model::tokenizer::byte_tokenizer;
use rora::model::{LoadOptions, ModelSource, RandomSpec, load};
use rora::sys::{cpu_seconds, peak_rss_mb};
use rora::train::data::read::read_records;
use rora::train::data::schema::{RowSchema, parse_row};
use rora::train::data::task::Task;
use rora::train::data::template::{Rendered, Template, render};
use rora::train::data::tokenize::{TokenizeOptions, tokenize_batch};
use rora::train::data::{DataConfig, build_dataset};
use rora::train::loss::{loss_sum, loss_sum_composed, shifted_targets};

fn shared_assets() -> PathBuf {
    std::env::var_os("RORA_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("assets")
}

fn rand(shape: &[usize], seed: u64) -> Tensor {
    uniform_tensor(shape, 1.0, seed, DType::F32, &Device::Cpu).expect("random tensor")
}

fn tokens_per_s(model: &Llama, b: usize, t: usize, reps: usize) -> f64 {
    let v = model.config().vocab_size as u32;
    let data: Vec<u32> = (0..b * t).map(|i| (i as u32 * 7919 + 13) % v).collect();
    let x = Tensor::from_vec(data, (b, t), &Device::Cpu).expect("ids");
    let mask = Tensor::ones((b, t), DType::U32, &Device::Cpu).expect("mask");
    model.forward(&x, &mask).expect("warm-up forward");
    let t0 = Instant::now();
    for _ in 0..reps {
        model.forward(&x, &mask).expect("forward");
    }
    (b * t * reps) as f64 / t0.elapsed().as_secs_f64()
}

fn forward_tiny() {
    let m = load(
        &ModelSource::Random(RandomSpec::tiny(0)),
        &LoadOptions::default(),
    )
    .expect("tiny model");
    println!(
        "forward-tiny: 8x128 {:.0} tokens/s",
        tokens_per_s(&m.model, 8, 128, 20)
    );
}

fn forward_smollm2() {
    let p = shared_assets().join("models/smollm2-135m-instruct-q4_1.gguf");
    if !p.exists() {
        println!("forward-smollm2: SKIP ({} not found)", p.display());
        return;
    }
    let rss0 = peak_rss_mb();
    let t0 = Instant::now();
    let m = load(&ModelSource::Gguf(p), &LoadOptions::default()).expect("SmolLM2");
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "forward-smollm2: GGUF -> f32 load {secs:.3} s, peak RSS {:.0} MB (before {rss0:.0} MB); 8x128 {:.0} tokens/s",
        peak_rss_mb(),
        tokens_per_s(&m.model, 8, 128, 2)
    );
}

fn projection_ms(method: Option<Method>, dropout: f64) -> f64 {
    let w = rand(&[576, 576], 1).affine(0.04, 0.0).expect("weight");
    let mut model = vec![(
        "model.layers.0.self_attn.q_proj".to_string(),
        Linear::new(w, None),
    )];
    if let Some(m) = method {
        let mut cfg = AdapterConfig::new(m, ScalingRule::Rora, 8, 16.0, Targets::AllLinear);
        cfg.dropout = dropout;
        attach(&mut model, &cfg).expect("attach");
        set_training(&model, true);
    }
    let x = Var::from_tensor(&rand(&[1024, 576], 2)).expect("input");
    let g = rand(&[1024, 576], 3);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        let y = model[0].1.forward(x.as_tensor()).expect("forward");
        let grads = (y * &g)
            .and_then(|p| p.sum_all())
            .and_then(|s| s.backward());
        assert!(grads.expect("backward").get(x.as_tensor()).is_some());
        best = best.min(t0.elapsed().as_secs_f64());
    }
    best * 1e3
}

fn projection() {
    println!(
        "projection: fwd+bwd ms (best of 5, x [1024, 576], W [576, 576], r 8): base {:.1}, lora {:.1}, lora+dropout {:.1}, dora {:.1}, dora+dropout {:.1}",
        projection_ms(None, 0.0),
        projection_ms(Some(Method::Lora), 0.0),
        projection_ms(Some(Method::Lora), 0.05),
        projection_ms(Some(Method::Dora), 0.0),
        projection_ms(Some(Method::Dora), 0.05),
    );
}

fn frozen() {
    let x = Var::from_tensor(&rand(&[1024, 576], 1)).expect("input");
    let w = rand(&[1536, 576], 2);
    let g = rand(&[1024, 1536], 3);
    let time = |use_frozen: bool| {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t0 = Instant::now();
            let y = if use_frozen {
                frozen_linear(x.as_tensor(), &w).expect("frozen")
            } else {
                x.as_tensor().matmul(&w.t().expect("t")).expect("matmul")
            };
            let grads = (y * &g)
                .and_then(|p| p.sum_all())
                .and_then(|s| s.backward());
            assert!(grads.expect("backward").get(x.as_tensor()).is_some());
            best = best.min(t0.elapsed().as_secs_f64());
        }
        best
    };
    let (plain, ours) = (time(false), time(true));
    println!(
        "frozen: fwd+bwd best of 5 (x [1024, 576], W [1536, 576]): plain matmul {:.1} ms, frozen_linear {:.1} ms ({:.2}x)",
        plain * 1e3,
        ours * 1e3,
        plain / ours
    );
}

fn loss() {
    let logits =
        Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 128, 49152), &Device::Cpu).expect("logits"))
            .expect("var");
    let labels = Tensor::zeros((4, 128), DType::I64, &Device::Cpu).expect("labels");
    for _ in 0..3 {
        let c = cpu_seconds();
        let s = loss_sum(logits.as_tensor(), &labels).expect("fused loss");
        let fwd = cpu_seconds() - c;
        let _ = s.backward().expect("backward");
        println!(
            "loss: fused CPU s fwd {fwd:.3} total {:.3}",
            cpu_seconds() - c
        );
    }
    let targets = shifted_targets(&labels).expect("targets");
    let c = cpu_seconds();
    let s = loss_sum_composed(logits.as_tensor(), &targets).expect("composed loss");
    let fwd = cpu_seconds() - c;
    let _ = s.backward().expect("backward");
    println!(
        "loss: composed CPU s fwd {fwd:.3} total {:.3}",
        cpu_seconds() - c
    );
}

fn data_profile() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/commonsense");
    let files: Vec<PathBuf> = ["hellaswag.train.jsonl", "piqa.train.jsonl"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let t0 = cpu_seconds();
    let mut rendered = Vec::new();
    for _ in 0..10 {
        for f in &files {
            for (loc, v) in read_records(f).expect("records") {
                let task = Task::from_file_name(f);
                let row = parse_row(v, RowSchema::Auto, task, f, loc).expect("row");
                rendered.push(render(&Template::LlmAdapters, &row, task, None).expect("render"));
            }
        }
    }
    let t1 = cpu_seconds();
    let tok = byte_tokenizer().expect("byte tokenizer");
    let opts = TokenizeOptions {
        eos_id: Some(258),
        ..Default::default()
    };
    let out = tokenize_batch(&tok, &rendered, &opts).expect("tokenize");
    let t2 = cpu_seconds();
    let bytes: usize = rendered
        .iter()
        .map(|r| match r {
            Rendered::Pair(p) => p.prompt.len() + p.completion.len(),
            Rendered::Chat { text, .. } => text.len(),
        })
        .sum();
    println!(
        "data-profile: {} rows, {bytes} bytes: read+parse+render {:.3} s CPU, tokenize {:.3} s CPU ({:.0} rows/s, {:.2} MB/s)",
        out.len(),
        t1 - t0,
        t2 - t1,
        out.len() as f64 / (t2 - t1),
        bytes as f64 / (t2 - t1) / 1e6
    );
}

fn data_full() {
    let dir = shared_assets().join("commonsense");
    if !dir.join("boolq.train.jsonl.gz").exists() {
        println!("data-full: SKIP ({} not found)", dir.display());
        return;
    }
    let mut cfg = DataConfig::new(vec!["*.train.jsonl.gz".into()], Template::LlmAdapters);
    cfg.tokenize.eos_id = Some(258);
    cfg.val_rows = 120;
    let t = Instant::now();
    let ds = build_dataset(&cfg, &dir, &byte_tokenizer().expect("tokenizer"), None).expect("build");
    let secs = t.elapsed().as_secs_f64();
    let rows = ds.meta.rows_read;
    println!(
        "data-full: built {rows} rows ({} train tokens, {} truncated) in {secs:.2} s = {:.0} rows/s",
        ds.meta.train_tokens,
        ds.meta.truncated,
        rows as f64 / secs
    );
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all: [(&str, fn()); 7] = [
        ("forward-tiny", forward_tiny),
        ("forward-smollm2", forward_smollm2),
        ("projection", projection),
        ("frozen", frozen),
        ("loss", loss),
        ("data-profile", data_profile),
        ("data-full", data_full),
    ];
    println!("rayon threads: {}", rayon::current_num_threads());
    for (name, run) in all {
        if filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())) {
            run();
        }
    }
}
