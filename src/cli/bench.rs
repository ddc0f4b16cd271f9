//! `rora bench train`: the training-throughput benchmark, measured the way
//! `../shared/bench/peft_baseline.py` measures PyTorch + PEFT, and printed as one JSON line with
//! the same headline fields (`tokens_per_s`, `step_ms_median`, `peak_rss_mb`).
//!
//! A random-weight LLaMA of the preset's shape gets LoRA/RoRA/DoRA adapters on all seven
//! projections and is trained by the real loop ([`crate::train::train`]) on random token
//! batches (labels = inputs, as the baseline). A step's time is the wall time between the
//! loop's consecutive step reports: forward, loss, backward, clipping-free AdamW, metrics line.
//! The first `--warmup` steps are not timed. Threads: set `RAYON_NUM_THREADS` (reported).
//! `--device cuda` runs the same loop on a GPU (the base in `--dtype`, adapters and AdamW state in
//! f32); the LLaMA-shaped presets (`llama-1b`, `llama-8b`) draw their weights on the device, the
//! small ones on the CPU with a seeded generator (so CPU and GPU start from the same weights).

use candle_core::{DType, Device, Tensor};
use clap::{Args, Subcommand, ValueEnum};
use miette::{IntoDiagnostic, Result, WrapErr};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::time::Instant;

use crate::adapter::{self, AdaptableModel, AdapterConfig, Linear, Method, ScalingRule, Targets};
use crate::lm::{CausalLm, TrainableLm};
use crate::model::config::{LlamaConfig, PROJECTIONS, UniformShape};
use crate::model::llama::Llama;
use crate::model::ops::LayerPath;
use crate::model::weights::NamedTensors;
use crate::train::batch::{Batch, Example};
use crate::train::source::{BatchSource, SourceError};
use crate::train::{
    Budget, Control, Schedule, TrainConfig, TrainHooks, Warmup, metrics::StepMetrics,
};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Training throughput on a random-weight model (one JSON line on stdout).
    Train(TrainBench),
    /// Evaluation throughput (loglik scoring and generation) on a GGUF model; writes the ids and
    /// scores `scripts/bench_eval.py` compares with transformers.
    Eval(super::bench_eval::EvalBench),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// 4 layers, hidden 256, 4 heads, FFN 688, vocab 1000, untied.
    Tiny,
    /// SmolLM2-135M: 30 layers, hidden 576, 9 heads / 3 KV heads, FFN 1536, vocab 49152, tied.
    #[value(name = "smollm2-135m")]
    Smollm2_135m,
    /// Llama-3.2-1B's shape: 16 layers, hidden 2048, 32 heads / 8 KV heads, FFN 8192, vocab 128256, tied.
    #[value(name = "llama-1b")]
    Llama1b,
    /// Llama-3-8B's shape: 32 layers, hidden 4096, 32 heads / 8 KV heads, FFN 14336, vocab 128256.
    #[value(name = "llama-8b")]
    Llama8b,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchDtype {
    #[value(alias = "fp32")]
    F32,
    Bf16,
}

#[derive(Debug, Args)]
pub struct TrainBench {
    /// Model shape.
    #[arg(long, value_enum, default_value = "tiny")]
    pub preset: Preset,
    /// Adapter rank.
    #[arg(long, default_value_t = 8)]
    pub r: usize,
    /// lora_alpha (default 2 * r, as the baseline).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Scale alpha / sqrt(r) (RoRA, PEFT's use_rslora).
    #[arg(long)]
    pub rslora: bool,
    /// DoRA instead of LoRA.
    #[arg(long)]
    pub dora: bool,
    /// Prefix tuning with this many virtual tokens instead of LoRA (PEFT's PrefixTuningConfig;
    /// `scripts/bench_prefix_peft.py` is the peer).
    #[arg(long, conflicts_with_all = ["dora", "rslora"])]
    pub prefix: Option<usize>,
    /// Adapter dropout probability (the peer's baseline uses 0; the shipped pipelines 0.05).
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Base-weight dtype (adapters stay f32).
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: BenchDtype,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed warm-up steps before the timed ones.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to compute: `cpu`, `cuda[:N]` (needs the `cuda` feature) or `auto`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Decoder layers: `auto` (the fused op where it applies) or `composed` (candle ops).
    #[arg(long, value_enum, default_value = "auto")]
    pub layer_path: LayerPath,
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        BenchWhat::Train(t) => {
            let line = bench_train(&t)?;
            println!("{line}");
            Ok(())
        }
        BenchWhat::Eval(e) => {
            println!("{}", super::bench_eval::bench_eval(&e)?);
            Ok(())
        }
    }
}

/// The preset's config with the given vocabulary and tying.
pub fn preset_config(p: Preset) -> LlamaConfig {
    let known = |n: &str| crate::plan::shapes::by_name(n);
    match p {
        Preset::Llama1b => return known("llama-1b").unwrap_or_else(|| preset_config(Preset::Tiny)),
        Preset::Llama8b => return known("llama-8b").unwrap_or_else(|| preset_config(Preset::Tiny)),
        _ => {}
    }
    let (layers, hidden, heads, kv_heads, ffn, vocab, theta, tied) = match p {
        Preset::Tiny => (4, 256, 4, 4, 688, 1000, 10_000.0, false),
        Preset::Smollm2_135m => (30, 576, 9, 3, 1536, 49152, 100_000.0, true),
        Preset::Llama1b | Preset::Llama8b => (4, 256, 4, 4, 688, 1000, 10_000.0, false),
    };
    LlamaConfig {
        rope_theta: theta,
        max_position_embeddings: 8192,
        tie_word_embeddings: tied,
        bos_token_id: Some(1),
        eos_token_ids: vec![2],
        ..LlamaConfig::uniform(UniformShape {
            vocab,
            hidden,
            layers,
            heads,
            kv_heads,
            ffn,
        })
    }
}

/// Parameters above which the weights are drawn on the device (fast, not reproducible across
/// devices) rather than by the seeded CPU generator.
const DRAW_ON_DEVICE_ABOVE: u64 = 200_000_000;

/// Random weights of `cfg`'s shape: projections and embeddings uniform with std 0.02 (HF's
/// initializer_range), norms 1. Small shapes: seeded CPU generator, then moved to `dev` in
/// `dtype`; large shapes: drawn on `dev` directly.
fn random_weights(
    cfg: &LlamaConfig,
    seed: u64,
    dev: &Device,
    dtype: DType,
) -> candle_core::Result<NamedTensors> {
    let on_device = crate::plan::memory::base_params(cfg) > DRAW_ON_DEVICE_ABOVE;
    if on_device && !dev.is_cpu() {
        dev.set_seed(seed)?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bound = 0.02f32 * 3f32.sqrt();
    let mut uniform = |r: usize, c: usize| -> candle_core::Result<Tensor> {
        if on_device {
            return Tensor::rand(-bound, bound, (r, c), dev)?.to_dtype(dtype);
        }
        let v: Vec<f32> = (0..r * c)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Tensor::from_vec(v, (r, c), &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)
    };
    let mut w = NamedTensors::new("(bench random model)");
    let (v, h) = (cfg.vocab_size, cfg.hidden_size);
    w.insert("model.embed_tokens.weight", uniform(v, h)?);
    if !cfg.tie_word_embeddings {
        w.insert("lm_head.weight", uniform(v, h)?);
    }
    for i in 0..cfg.n_layers() {
        for p in PROJECTIONS {
            // invariant: PROJECTIONS are the names proj_shape knows and i < n_layers.
            let (o, n) = cfg.proj_shape(i, p).unwrap_or((0, 0));
            w.insert(
                format!("{}.weight", crate::model::config::module_path(i, p)),
                uniform(o, n)?,
            );
        }
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            w.insert(
                format!("model.layers.{i}.{norm}.weight"),
                Tensor::ones(h, dtype, dev)?,
            );
        }
    }
    w.insert("model.norm.weight", Tensor::ones(h, dtype, dev)?);
    Ok(w)
}

/// A LLaMA with adapters, as the trainer sees it.
pub struct AdaptedLlama(pub Llama);

impl AdaptableModel for AdaptedLlama {
    fn linears(&self) -> Vec<(String, &Linear)> {
        self.0.linears()
    }
    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        self.0.linears_mut()
    }
    fn prefix_shape(&self) -> Option<adapter::prefix::PrefixShape> {
        AdaptableModel::prefix_shape(&self.0)
    }
    fn prefix(&self) -> Option<&adapter::prefix::Prefix> {
        AdaptableModel::prefix(&self.0)
    }
    fn set_prefix(
        &mut self,
        p: Option<adapter::prefix::Prefix>,
    ) -> Result<Option<adapter::prefix::Prefix>, adapter::AdapterError> {
        AdaptableModel::set_prefix(&mut self.0, p)
    }
}

impl CausalLm for AdaptedLlama {
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> candle_core::Result<Tensor> {
        self.0.forward(input_ids, attention_mask)
    }
    fn logits_at(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: &[u32],
    ) -> candle_core::Result<Tensor> {
        self.0.logits_at(input_ids, attention_mask, rows)
    }
    fn branch_logits(&self, segments: &[crate::lm::Branches<'_>]) -> candle_core::Result<Tensor> {
        self.0.branch_logits(segments)
    }
    fn vocab_size(&self) -> usize {
        self.0.vocab_size()
    }
    fn device(&self) -> &Device {
        CausalLm::device(&self.0)
    }
}

impl TrainableLm for AdaptedLlama {
    fn trainable_vars(&self) -> Vec<(String, candle_core::Var)> {
        adapter::trainable_vars(self)
    }
    fn set_training(&self, training: bool) {
        adapter::set_training(self, training)
    }
    fn set_dropout_seed(&self, seed: u64) {
        adapter::set_dropout_stream(self, seed)
    }
}

/// Pre-drawn random token rows; every row is a full loss row (labels = inputs).
struct RandomTokens {
    rows: Vec<Vec<u32>>,
}

impl BatchSource for RandomTokens {
    fn num_batches(&self, size: usize) -> usize {
        self.rows.len() / size.max(1)
    }
    fn batch(
        &self,
        _: u64,
        _: usize,
        index: usize,
        size: usize,
        device: &Device,
    ) -> Result<Batch, SourceError> {
        let ex: Vec<Example> = self.rows[index * size..(index + 1) * size]
            .iter()
            .map(|r| Example {
                input_ids: r.clone(),
                labels: r.iter().map(|&t| i64::from(t)).collect(),
            })
            .collect();
        let refs: Vec<&Example> = ex.iter().collect();
        Ok(Batch::collate(&refs, 0, device)?)
    }
}

/// Step wall times and process CPU times, from consecutive step reports.
struct Timer {
    last: Instant,
    last_cpu: f64,
    times: Vec<f64>,
    cpu: Vec<f64>,
    losses: Vec<f64>,
}

impl TrainHooks for Timer {
    fn on_start(&mut self, _: usize, _: usize) {
        self.last = Instant::now();
        self.last_cpu = cpu_seconds();
    }
    fn on_step(&mut self, m: &StepMetrics) -> Control {
        let (now, cpu) = (Instant::now(), cpu_seconds());
        self.times.push((now - self.last).as_secs_f64());
        self.cpu.push(cpu - self.last_cpu);
        self.losses.push(m.loss);
        (self.last, self.last_cpu) = (Instant::now(), cpu_seconds());
        Control::Continue
    }
}

use crate::sys::{cpu_seconds, peak_rss_mb};

fn device_label(d: &Device) -> String {
    let info = crate::device::DeviceInfo::query(d);
    format!("{} ({})", info.label, info.name)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Run the benchmark; returns the JSON line.
pub fn bench_train(a: &TrainBench) -> Result<String> {
    let t0 = Instant::now();
    let cfg = preset_config(a.preset);
    let dtype = match a.dtype {
        BenchDtype::F32 => DType::F32,
        BenchDtype::Bf16 => DType::BF16,
    };
    let device = super::load::open(&a.device)?;
    let weights = random_weights(&cfg, a.seed, &device, dtype).into_diagnostic()?;
    let llama = Llama::from_tensors(cfg.clone(), weights, dtype)
        .into_diagnostic()
        .wrap_err("building the model")?;
    let mut model = AdaptedLlama(llama);
    let params = model.0.num_parameters();
    let alpha = a.alpha.unwrap_or(2.0 * a.r as f64);
    let rule = if a.rslora {
        ScalingRule::Rora
    } else {
        ScalingRule::Lora
    };
    let method = if a.dora { Method::Dora } else { Method::Lora };
    let targets = Targets::Names(PROJECTIONS.iter().map(|s| s.to_string()).collect());
    if !(0.0..1.0).contains(&a.dropout) {
        miette::bail!("--dropout must lie in [0, 1), got {}", a.dropout);
    }
    let mut acfg = match a.prefix {
        Some(n) => adapter::prefix_io::prefix_config(n),
        None => AdapterConfig::new(method, rule, a.r, alpha, targets),
    };
    acfg.dropout = a.dropout;
    let report = adapter::attach(&mut model, &acfg)
        .into_diagnostic()
        .wrap_err("attaching adapters")?;
    let trainable = report.trainable_params();

    let total = a.warmup + a.steps;
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed + 1);
    let rows = (0..total * a.batch)
        .map(|_| {
            (0..a.seq)
                .map(|_| rng.random_range(0..cfg.vocab_size as u32))
                .collect()
        })
        .collect();
    let data = RandomTokens { rows };
    let tcfg = TrainConfig {
        budget: Budget::MaxSteps(total),
        batch_size: a.batch,
        micro_batch_size: a.batch,
        lr: a.lr,
        warmup: Warmup::Steps(0),
        schedule: Schedule::Constant,
        // torch.optim.AdamW's defaults, as the baseline uses them
        adamw: crate::train::adamw::AdamWParams {
            weight_decay: 0.01,
            ..Default::default()
        },
        max_grad_norm: None,
        seed: a.seed,
        eval_every: None,
        save_every: None,
        keep_checkpoints: 1,
        log_every: 1,
        knobs: Default::default(),
    };
    model.0.set_layer_path(a.layer_path);
    let out = tempfile::tempdir().into_diagnostic()?;
    let setup_s = t0.elapsed().as_secs_f64();
    let mut timer = Timer {
        last: Instant::now(),
        last_cpu: 0.0,
        times: vec![],
        cpu: vec![],
        losses: vec![],
    };
    crate::train::train(&model, &data, &tcfg, out.path(), &mut timer)
        .into_diagnostic()
        .wrap_err("training")?;

    let timed = &timer.times[a.warmup.min(timer.times.len())..];
    let cpu = &timer.cpu[a.warmup.min(timer.cpu.len())..];
    let med = median(timed);
    let threads = rayon::current_num_threads();
    let toks = (a.batch * a.seq) as f64;
    let r3 = |x: f64| (x * 100.0).round() / 100.0;
    let line = json!({
        "tokens_per_s": r3(toks / med),
        // the rate `rora plan --rate` and the Slurm executor divide a train job's work by
        "train_flops_per_s": (crate::plan::memory::train_flops_per_token(&cfg) * toks / med).round(),
        "step_ms_median": r3(med * 1e3),
        "peak_rss_mb": (peak_rss_mb() * 10.0).round() / 10.0,
        "final_loss": timer.losses.last(),
        "first_loss": timer.losses.first(),
        "rayon_threads": threads,
        "step_ms_mean": r3(timed.iter().sum::<f64>() / timed.len().max(1) as f64 * 1e3),
        "step_ms_min": r3(timed.iter().copied().fold(f64::INFINITY, f64::min) * 1e3),
        "cpu_util": r3(cpu.iter().sum::<f64>() / (timed.iter().sum::<f64>() * threads as f64)),
        "variant": if a.prefix.is_some() { "prefix" } else if a.dora { "dora" } else if a.rslora { "rslora" } else { "lora" },
        "virtual_tokens": a.prefix,
        "r": a.r, "alpha": alpha, "scaling": rule.scale(alpha, a.r), "dropout": a.dropout,
        "batch": a.batch, "seq": a.seq, "steps": a.steps, "warmup": a.warmup,
        "dtype": match a.dtype { BenchDtype::F32 => "fp32", BenchDtype::Bf16 => "bf16" },
        "adapter_dtype": "float32",
        "params": params, "trainable_params": trainable,
        "layers": cfg.n_layers(), "hidden": cfg.hidden_size,
        "heads": cfg.layers[0].n_heads, "kv_heads": cfg.layers[0].n_kv_heads,
        "intermediate": cfg.layers[0].intermediate_size, "vocab": cfg.vocab_size,
        "tied": cfg.tie_word_embeddings, "source": format!("random-init preset={:?}", a.preset),
        "setup_s": r3(setup_s),
        "losses": timer.losses,
        "device": device_label(&device),
        "layer_path": model.0.layer_report(),
        "impl": "rora",
    });
    Ok(line.to_string())
}
