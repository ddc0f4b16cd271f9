//! The training loop: micro-batches -> loss -> gradients accumulated on the host -> clip -> AdamW,
//! with schedules, validation, metrics, checkpoints and exact resume.
//!
//! Guarantees:
//! - Gradient accumulation is token-exact: every micro-batch's loss SUM is divided by the number
//!   of loss tokens in the whole optimizer step, so accumulating k micro-batches gives the
//!   gradient of the mean over the full batch (as transformers >= 4.46 with `num_items_in_batch`;
//!   older HF averaged per micro-batch, which weights short micro-batches more).
//! - Only the model's trainable variables change; everything the next step depends on (variables,
//!   AdamW moments, data cursor, dropout RNG position) is in each checkpoint, and a run started
//!   on an output directory with checkpoints resumes from the newest one. On CPU a resumed run ends
//!   with the same adapter bytes as an uninterrupted one.
//! - A non-finite loss or gradient norm stops the run with an error naming the step, before any
//!   variable or checkpoint is touched.

use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::adamw::AdamW;
use super::atomic::write_file;
use super::batch::Batch;
use super::checkpoint::{self, LoopState, Params};
use super::config::{Budget, TrainConfig, TrainKnobs};
use super::error::{Result, TrainError};
use super::grads;
use super::hooks::{Control, TrainHooks};
use super::loss::{count_loss_tokens, loss_positions, loss_sum, loss_sum_targets};
use super::metrics::{self, EvalMetrics, StepMetrics};
use super::rng::DropoutRng;
use super::schedule::lr_factor;
use super::source::BatchSource;
use super::split;
use super::tensors_io;
use crate::lm::{CausalLm, TrainableLm};

/// The final adapter, `<out>/adapter.safetensors`: every trainable variable by its PEFT name.
pub const FINAL_ADAPTER: &str = "adapter.safetensors";
pub const METRICS: &str = "metrics.jsonl";
pub const CHECKPOINTS: &str = "checkpoints";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub steps: usize,
    pub epochs: f64,
    pub final_loss: Option<f64>,
    pub final_val_loss: Option<f64>,
    pub tokens_seen: u64,
    pub elapsed_s: f64,
    /// Step of the checkpoint this attempt resumed from, if any.
    pub resumed_from: Option<usize>,
    pub adapter: PathBuf,
    pub metrics: PathBuf,
}

/// The plan derived from the config and the data size.
struct Plan {
    accumulation: usize,
    micro_per_epoch: usize,
    total_steps: usize,
    warmup_steps: usize,
}

fn plan(cfg: &TrainConfig, data: &(impl BatchSource + ?Sized)) -> Result<Plan> {
    let micro_per_epoch = data.num_batches(cfg.micro_batch_size);
    if micro_per_epoch == 0 {
        return Err(TrainError::NoData);
    }
    let accumulation = cfg.accumulation();
    let total_steps = match cfg.budget {
        Budget::Epochs(e) => e * micro_per_epoch.div_ceil(accumulation),
        Budget::MaxSteps(s) => s,
    };
    Ok(Plan {
        accumulation,
        micro_per_epoch,
        total_steps,
        warmup_steps: cfg.warmup.steps(total_steps),
    })
}

/// Train the model's adapter variables on `data` into `out_dir` (created if needed; resumed from
/// its newest checkpoint when there is one). See the module docs for what is guaranteed.
pub fn train<M, S>(
    model: &M,
    data: &S,
    cfg: &TrainConfig,
    out_dir: &Path,
    hooks: &mut dyn TrainHooks,
) -> Result<TrainSummary>
where
    M: TrainableLm + ?Sized,
    S: BatchSource + ?Sized,
{
    cfg.validate()?;
    let plan = plan(cfg, data)?;
    let vars = model.trainable_vars();
    if vars.is_empty() {
        return Err(TrainError::NoTrainableVars);
    }
    fs::create_dir_all(out_dir).map_err(TrainError::io(out_dir))?;
    let ckpt_root = out_dir.join(CHECKPOINTS);
    let metrics_path = out_dir.join(METRICS);
    let names: Vec<(String, Vec<usize>)> = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.dims().to_vec()))
        .collect();
    let sizes: Vec<usize> = vars.iter().map(|(_, v)| v.elem_count()).collect();

    let mut opt = AdamW::new(cfg.adamw, &sizes);
    let mut params = read_vars(&vars)?;
    let (mut st, mut rng, resumed_from) = match checkpoint::latest(&ckpt_root)? {
        Some(dir) => {
            let loaded = checkpoint::load(&dir, &names, cfg)?;
            params = loaded.values;
            write_vars(&vars, &params, loaded.state.step)?;
            opt.state = loaded.adam;
            write_file(&metrics_path, loaded.metrics.as_bytes())?;
            let rng = DropoutRng::restore(&loaded.state.rng)
                .ok_or_else(|| TrainError::checkpoint(&dir, "unreadable RNG state"))?;
            let step = loaded.state.step;
            (loaded.state, rng, Some(step))
        }
        None => {
            write_file(&metrics_path, b"")?;
            let rng = DropoutRng::new(cfg.seed);
            let st = LoopState {
                step: 0,
                epoch: 0,
                index: 0,
                rng: rng.state(),
                tokens_seen: 0,
                elapsed_s: 0.0,
                last_loss: None,
                last_val_loss: None,
            };
            (st, rng, None)
        }
    };
    let mut metrics_file = OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .map_err(TrainError::io(&metrics_path))?;
    let mut metrics_text =
        fs::read_to_string(&metrics_path).map_err(TrainError::io(&metrics_path))?;
    let mut emit = |line: String, text: &mut String| -> Result<()> {
        metrics_file
            .write_all(line.as_bytes())
            .map_err(TrainError::io(&metrics_path))?;
        text.push_str(&line);
        Ok(())
    };

    hooks.on_start(plan.total_steps, st.step);
    model.set_training(true);
    let device = model.device().clone();
    let attempt_start = Instant::now();
    let elapsed_before = st.elapsed_s;

    while st.step < plan.total_steps {
        let step_start = Instant::now();
        let step = st.step;
        // The step's micro-batches: up to `accumulation`, never across an epoch boundary.
        if st.index >= plan.micro_per_epoch {
            st.epoch += 1;
            st.index = 0;
        }
        let n_micro = plan.accumulation.min(plan.micro_per_epoch - st.index);
        let mut batches = Vec::with_capacity(n_micro);
        for k in 0..n_micro {
            let index = st.index + k;
            let b = data
                .batch(cfg.seed, st.epoch, index, cfg.micro_batch_size, &device)
                .map_err(|source| TrainError::Data {
                    epoch: st.epoch,
                    index,
                    source,
                })?;
            batches.push(b);
        }
        let loss_tokens: usize = batches
            .iter()
            .map(|b| count_loss_tokens(&b.labels))
            .sum::<candle_core::Result<usize>>()
            .map_err(TrainError::candle(step + 1))?;
        let tokens: usize = batches.iter().map(|b| b.n_tokens).sum();

        if let Some(path) = &cfg.knobs.dump_batches {
            dump_batches(path, step + 1, &batches).map_err(TrainError::candle(step + 1))?;
        }
        let mut acc: Vec<Vec<f32>> = sizes.iter().map(|&n| vec![0.0; n]).collect();
        let mut loss_total = 0f64;
        for b in &batches {
            model.set_dropout_seed(rng.next_seed());
            let sum = micro_step(
                model,
                b,
                loss_tokens.max(1),
                &vars,
                &mut acc,
                step + 1,
                &cfg.knobs,
            )?;
            loss_total += sum;
        }
        let loss = loss_total / loss_tokens.max(1) as f64;
        if !loss.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step: step + 1,
                loss,
            });
        }
        let grad_norm = grads::clip(&mut acc, cfg.max_grad_norm);
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFiniteGrad {
                step: step + 1,
                norm: grad_norm,
            });
        }
        let lr = cfg.lr * lr_factor(cfg.schedule, plan.warmup_steps, plan.total_steps, step);
        opt.step(lr, &mut params, &acc);
        write_vars(&vars, &params, step + 1)?;

        st.step += 1;
        st.index += n_micro;
        st.tokens_seen += tokens as u64;
        st.elapsed_s = elapsed_before + attempt_start.elapsed().as_secs_f64();
        st.last_loss = Some(loss);
        st.rng = rng.state();
        let m = StepMetrics {
            kind: "train".into(),
            step: st.step,
            total_steps: plan.total_steps,
            epoch: st.epoch as f64 + st.index as f64 / plan.micro_per_epoch as f64,
            loss,
            lr,
            grad_norm,
            tokens,
            loss_tokens,
            tokens_per_s: tokens as f64 / step_start.elapsed().as_secs_f64().max(1e-9),
            elapsed_s: st.elapsed_s,
        };
        emit(metrics::line(&m), &mut metrics_text)?;
        let control = hooks.on_step(&m);

        let last = st.step == plan.total_steps;
        if cfg.eval_every.is_some_and(|n| st.step % n == 0 || last)
            && data.num_val_batches(cfg.micro_batch_size) > 0
        {
            let (val_loss, val_tokens) = validate(model, data, cfg.micro_batch_size, st.step)?;
            st.last_val_loss = Some(val_loss);
            let e = EvalMetrics {
                kind: "eval".into(),
                step: st.step,
                val_loss,
                val_tokens,
                elapsed_s: st.elapsed_s,
            };
            emit(metrics::line(&e), &mut metrics_text)?;
            hooks.on_eval(&e);
        }
        if cfg.save_every.is_some_and(|n| st.step % n == 0) {
            let p = Params {
                names: &names,
                values: &params,
            };
            let dir = checkpoint::save(
                &ckpt_root,
                &st,
                &p,
                &opt.state,
                cfg,
                &metrics_text,
                cfg.keep_checkpoints,
            )?;
            hooks.on_checkpoint(st.step, &dir);
        }
        if control == Control::Stop {
            return Err(TrainError::Stopped { step: st.step });
        }
    }

    model.set_training(false);
    let adapter = out_dir.join(FINAL_ADAPTER);
    let p = Params {
        names: &names,
        values: &params,
    };
    write_file(
        &adapter,
        &tensors_io::to_bytes(&checkpoint::adapter_tensors(&p), &adapter)?,
    )?;
    let summary = TrainSummary {
        steps: st.step,
        epochs: st.epoch as f64 + st.index as f64 / plan.micro_per_epoch as f64,
        final_loss: st.last_loss,
        final_val_loss: st.last_val_loss,
        tokens_seen: st.tokens_seen,
        elapsed_s: st.elapsed_s,
        resumed_from,
        adapter,
        metrics: metrics_path,
    };
    let json =
        serde_json::to_vec_pretty(&summary).map_err(|e| TrainError::checkpoint(out_dir, e))?;
    write_file(&out_dir.join("summary.json"), &json)?;
    hooks.on_finish();
    Ok(summary)
}

/// Forward + backward of one micro-batch, its loss sum divided by `norm_tokens`; gradients are
/// added into `acc`. Returns the (unnormalised) loss sum.
pub(crate) fn micro_step<M: TrainableLm + ?Sized>(
    model: &M,
    b: &Batch,
    norm_tokens: usize,
    vars: &[(String, Var)],
    acc: &mut [Vec<f32>],
    step: usize,
    knobs: &TrainKnobs,
) -> Result<f64> {
    let overhead = (!knobs.whole_batches).then_some(split::OVERHEAD_TOKENS);
    micro_step_split(
        model,
        b,
        norm_tokens,
        vars,
        acc,
        step,
        overhead,
        knobs.full_logits,
    )
}

/// [`micro_step`] with the length groups' overhead given (`None`: one pass).
#[allow(clippy::too_many_arguments)]
pub(crate) fn micro_step_split<M: TrainableLm + ?Sized>(
    model: &M,
    b: &Batch,
    norm_tokens: usize,
    vars: &[(String, Var)],
    acc: &mut [Vec<f32>],
    step: usize,
    overhead: Option<usize>,
    full_logits: bool,
) -> Result<f64> {
    let run = |b: &Batch| -> candle_core::Result<(f64, candle_core::backprop::GradStore)> {
        let sum = batch_loss_sum(model, b, true, full_logits)?;
        let value = f64::from(sum.to_dtype(DType::F32)?.to_scalar::<f32>()?);
        let grads = sum.affine(1.0 / norm_tokens as f64, 0.0)?.backward()?;
        Ok((value, grads))
    };
    // rows of similar length together, each group padded only to its own longest row
    let lengths = split::row_lengths(&b.attention_mask).map_err(TrainError::candle(step))?;
    let groups = overhead.map_or_else(Vec::new, |o| split::length_groups(&lengths, o));
    let width = b.input_ids.dim(1).map_err(TrainError::candle(step))?;
    if groups.len() <= 1 && groups.first().is_none_or(|(_, w)| *w == width) {
        let (value, grads) = run(b).map_err(TrainError::candle(step))?;
        if value.is_finite() {
            grads::accumulate(acc, &grads, vars, step)?;
        }
        return Ok(value);
    }
    let mut total = 0.0;
    for (rows, w) in &groups {
        let sub = split::sub_batch(b, rows, *w, &lengths).map_err(TrainError::candle(step))?;
        let (value, grads) = run(&sub).map_err(TrainError::candle(step))?;
        total += value;
        if !value.is_finite() {
            return Ok(value);
        }
        grads::accumulate(acc, &grads, vars, step)?;
    }
    Ok(total)
}

/// The loss sum of one batch, with the output projection and the softmax only at its loss
/// positions ([`CausalLm::logits_at`]): padding, masked prompt tokens and each row's last
/// position never reach the `[rows, vocab]` logits. Equal to `loss_sum(forward(..))`.
/// [`TrainKnobs::dump_batches`]: append each step's micro-batches (padded token ids, mask, labels)
/// as JSON lines, so a peer implementation can train on exactly the same batches
/// (`scripts/bench_train_real.py`).
fn dump_batches(path: &Path, step: usize, batches: &[Batch]) -> candle_core::Result<()> {
    let io = |e: std::io::Error| candle_core::Error::Msg(format!("{}: {e}", path.display()));
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    for (micro, b) in batches.iter().enumerate() {
        let line = serde_json::json!({
            "step": step,
            "micro": micro,
            "input_ids": b.input_ids.to_vec2::<u32>()?,
            "attention_mask": b.attention_mask.to_vec2::<u32>()?,
            "labels": b.labels.to_dtype(DType::I64)?.to_vec2::<i64>()?,
        });
        writeln!(f, "{line}").map_err(io)?;
    }
    Ok(())
}

/// Without `grad` the logits are detached (validation: no backward).
pub(crate) fn batch_loss_sum<M: CausalLm + ?Sized>(
    model: &M,
    b: &Batch,
    grad: bool,
    full_logits: bool,
) -> candle_core::Result<Tensor> {
    let detach = |t: Tensor| if grad { t } else { t.detach() };
    let (rows, targets) = loss_positions(&b.labels)?;
    if rows.is_empty() || full_logits {
        // nothing to score (or asked for): the full forward; with no loss token the sum is a
        // zero that still reaches the adapters
        let logits = detach(model.forward(&b.input_ids, &b.attention_mask)?);
        return loss_sum(&logits, &b.labels);
    }
    let logits = detach(model.logits_at(&b.input_ids, &b.attention_mask, &rows)?);
    loss_sum_targets(&logits, targets)
}

/// Mean validation loss over all validation batches (dropout off), and its token count.
pub fn validate<M, S>(model: &M, data: &S, size: usize, step: usize) -> Result<(f64, usize)>
where
    M: TrainableLm + ?Sized,
    S: BatchSource + ?Sized,
{
    model.set_training(false);
    let device = model.device().clone();
    let (mut total, mut tokens) = (0f64, 0usize);
    for index in 0..data.num_val_batches(size) {
        let b = data
            .val_batch(index, size, &device)
            .map_err(|source| TrainError::ValData { index, source })?;
        let run = || -> candle_core::Result<(f64, usize)> {
            let lengths = split::row_lengths(&b.attention_mask)?;
            let mut sum = 0f64;
            for (rows, w) in split::length_groups(&lengths, split::OVERHEAD_TOKENS) {
                let sub = split::sub_batch(&b, &rows, w, &lengths)?;
                let s = batch_loss_sum(model, &sub, false, false)?
                    .to_dtype(DType::F32)?
                    .to_scalar::<f32>()?;
                sum += f64::from(s);
            }
            Ok((sum, count_loss_tokens(&b.labels)?))
        };
        let (s, n) = run().map_err(TrainError::candle(step))?;
        total += s;
        tokens += n;
    }
    model.set_training(true);
    Ok((total / tokens.max(1) as f64, tokens))
}

fn read_vars(vars: &[(String, Var)]) -> Result<Vec<Vec<f32>>> {
    vars.iter()
        .map(|(_, v)| {
            v.as_tensor()
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()
        })
        .collect::<candle_core::Result<_>>()
        .map_err(TrainError::candle(0))
}

fn write_vars(vars: &[(String, Var)], values: &[Vec<f32>], step: usize) -> Result<()> {
    for ((_, var), v) in vars.iter().zip(values) {
        let t = Tensor::from_slice(v, var.shape(), var.device())
            .and_then(|t| t.to_dtype(var.dtype()))
            .and_then(|t| var.set(&t));
        t.map_err(TrainError::candle(step))?;
    }
    Ok(())
}
