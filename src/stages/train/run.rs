//! The `train` runner: the base model with the adapter stage's fresh adapter, trained on the
//! tokenized data.

use std::path::Path;

use serde_json::json;

use crate::adapter::{SaveOptions, save_peft};
use crate::cache::Entry;
use crate::exec::progress::Progress;

use crate::train::adamw::AdamWParams;
use crate::train::data::PlanConfig;
use crate::train::metrics::StepMetrics;
use crate::train::{Budget, Control, DatasetSource, TrainConfig, TrainHooks, Warmup, train};

use crate::run::artifacts::{
    ADAPTER_CONFIG, ADAPTER_DIR, METRICS, TENSORBOARD_DIR, TRAIN_SUMMARY, adapter_config,
    install_adapter, load_model, stored_dtype, write_json,
};
use crate::run::context::Ctx;
use crate::run::error::{Result, io};
use crate::stages::tokens;

use super::{Duration, TrainParams, Warmup as IrWarmup};

pub fn config(p: &TrainParams, train_rows: usize) -> Result<TrainConfig> {
    let budget = match p.duration {
        Duration::Steps(s) => Budget::MaxSteps(s as usize),
        Duration::Epochs(e) if e.fract() == 0.0 => Budget::Epochs(e as usize),
        Duration::Epochs(e) => {
            let per_epoch = train_rows.div_ceil(p.batch.max(1));
            Budget::MaxSteps(((e * per_epoch as f64).ceil() as usize).max(1))
        }
    };
    let schedule = p.schedule;
    Ok(TrainConfig {
        budget,
        batch_size: p.batch,
        micro_batch_size: p.micro_batch,
        lr: p.lr,
        warmup: match p.warmup {
            IrWarmup::Steps(s) => Warmup::Steps(s as usize),
            IrWarmup::Ratio(r) => Warmup::Ratio(r),
        },
        schedule,
        adamw: AdamWParams {
            beta1: p.beta1,
            beta2: p.beta2,
            eps: p.eps,
            weight_decay: p.weight_decay,
        },
        max_grad_norm: (p.grad_clip > 0.0).then_some(p.grad_clip),
        seed: p.seed,
        eval_every: p.eval_every.map(|e| e as usize),
        save_every: p.checkpoint_every.map(|e| e as usize),
        keep_checkpoints: 2,
        log_every: 1,
        knobs: Default::default(),
    })
}

/// Forwards the loop's steps to the executor's progress line.
struct StageHooks<'a>(&'a dyn Progress);

impl TrainHooks for StageHooks<'_> {
    fn on_start(&mut self, total_steps: usize, start_step: usize) {
        self.0.set_total(total_steps as u64, "steps");
        self.0.set_position(start_step as u64);
        if start_step > 0 {
            self.0.message(&format!("resumed at step {start_step}"));
        }
    }

    fn on_step(&mut self, m: &StepMetrics) -> Control {
        self.0.set_position(m.step as u64);
        self.0
            .message(&format!("loss {:.4} lr {:.2e}", m.loss, m.lr));
        Control::Continue
    }
}

pub struct TrainInputs<'a> {
    pub model: &'a Entry,
    pub adapter: &'a Entry,
    /// The `tokens` entry of (data, model).
    pub tokens: &'a Entry,
    /// What the saved adapter says of its base (`adapter_config.json`).
    pub save: SaveOptions,
}

pub fn run(
    ctx: &Ctx,
    p: &TrainParams,
    inputs: TrainInputs,
    resume_dir: &Path,
    out: &Path,
    progress: &dyn Progress,
) -> Result<serde_json::Value> {
    let mut loaded = load_model(inputs.model, stored_dtype(inputs.model)?, &ctx.device)?;
    let ds = tokens::load(inputs.tokens)?;
    install_adapter(&mut loaded, inputs.adapter)?;
    loaded.model.set_layer_path(ctx.knobs.layer_path);
    loaded.model.reset_layer_log();
    let adapter_cfg = adapter_config(inputs.adapter)?;
    let mut cfg = config(p, ds.train.len())?;
    cfg.knobs = ctx.knobs.train.clone();
    let (train_rows, val_rows) = (ds.train.len(), ds.val.len());
    let source = DatasetSource::new(
        &ds,
        loaded.special.pad_id(),
        PlanConfig::new(cfg.micro_batch_size, cfg.seed),
    );
    let summary = train(
        &loaded.model,
        &source,
        &cfg,
        resume_dir,
        &mut StageHooks(progress),
    )?;
    save_peft(
        &loaded.model,
        &adapter_cfg,
        &out.join(ADAPTER_DIR),
        &inputs.save,
    )?;
    write_json(&out.join(ADAPTER_CONFIG), &adapter_cfg)?;
    // Read once: copied as metrics.jsonl, and the same records for TensorBoard
    // (`tensorboard --logdir <out>`, HF Trainer's tags).
    let text = std::fs::read_to_string(&summary.metrics).map_err(io(&summary.metrics))?;
    let metrics = out.join(METRICS);
    std::fs::write(&metrics, &text).map_err(io(&metrics))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let runs = out.join(TENSORBOARD_DIR);
    crate::train::tensorboard::write(&runs, &text, now).map_err(io(&runs))?;
    let meta = json!({
        "steps": summary.steps,
        "epochs": summary.epochs,
        "final_loss": summary.final_loss,
        "final_val_loss": summary.final_val_loss,
        "tokens_seen": summary.tokens_seen,
        "elapsed_s": summary.elapsed_s,
        "resumed_from": summary.resumed_from,
        "train_rows": train_rows,
        "val_rows": val_rows,
        "scale": adapter_cfg.rule.scale(adapter_cfg.alpha, adapter_cfg.rank),
        "layer_path": loaded.model.layer_report(),
    });
    let mut meta = meta;
    if !cfg.knobs.is_default() {
        meta["knobs"] = json!(cfg.knobs);
    }
    write_json(&out.join(TRAIN_SUMMARY), &meta)?;
    Ok(meta)
}
