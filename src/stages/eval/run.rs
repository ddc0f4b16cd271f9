//! The `eval` runner: the tasks under one protocol, on a model directory or a base model with a
//! trained adapter (unmerged).

use std::path::Path;

use candle_core::DType;
use serde_json::json;

use crate::cache::Entry;
use crate::eval::{EvalConfig, Progress as EvalProgress, Protocol, TextCodec, evaluate_prepared};
use crate::exec::progress::Progress;
use crate::model::LoadedModel;
use crate::run::artifacts::{install_adapter, load_model};
use crate::run::context::Ctx;
use crate::run::error::Result;

use super::EvalParams;

/// Where the weights under evaluation come from.
pub enum EvalModel<'a> {
    /// An HF dir entry (a `model` or `merge` stage).
    Dir(&'a Entry),
    /// A base model entry with a trained adapter on top.
    Adapted { base: &'a Entry, trained: &'a Entry },
}

fn config(p: &EvalParams) -> Result<EvalConfig> {
    let protocol: Protocol = p.protocol;
    let mut tasks = Vec::with_capacity(p.tasks.len());
    for name in &p.tasks {
        let task = super::tasks::resolve(name, p.split.name(), &p.dir)
            .map_err(|e| crate::eval::EvalError::Task(e.to_string()))?;
        tasks.push(task);
    }
    let mut cfg = EvalConfig::new(tasks, protocol);
    cfg.limit = p.limit;
    cfg.subset = p.subset;
    cfg.batch_size = p.batch_size.max(1);
    cfg.generation.max_new_tokens = p.max_new_tokens;
    cfg.generation.num_beams = p.beams.max(1);
    Ok(cfg)
}

fn load(ctx: &Ctx, m: EvalModel) -> Result<LoadedModel> {
    Ok(match m {
        EvalModel::Dir(e) => load_model(e, DType::F32, &ctx.device)?,
        EvalModel::Adapted { base, trained } => {
            let mut l = load_model(base, DType::F32, &ctx.device)?;
            install_adapter(&mut l, trained)?;
            l
        }
    })
}

pub fn run(
    ctx: &Ctx,
    p: &EvalParams,
    model: EvalModel,
    out: &Path,
    progress: &dyn Progress,
) -> Result<serde_json::Value> {
    let cfg = config(p)?;
    // Rows and templates are checked before the model is loaded.
    let prepared = crate::eval::prepare(&cfg)?;
    let loaded = load(ctx, model)?;
    let codec = TextCodec::new(
        &loaded.tokenizer,
        &loaded.special.eos,
        loaded.special.pad_id(),
    );
    let total_tasks = cfg.tasks.len();
    let mut done_tasks = 0usize;
    progress.set_total(total_tasks as u64, "tasks");
    let results = evaluate_prepared(&loaded.model, &codec, &cfg, &prepared, &mut |e| match e {
        EvalProgress::TaskStarted { task, items } => {
            progress.message(&format!("{task}: {items} items"))
        }
        EvalProgress::Advanced { task, done, total } => {
            progress.message(&format!("{task} {done}/{total}"))
        }
        EvalProgress::TaskFinished { task, accuracy } => {
            done_tasks += 1;
            progress.set_position(done_tasks as u64);
            progress.message(&format!("{task} acc {accuracy:.3}"));
        }
    })?;
    results.write(out)?;
    let summary = crate::eval::EvalSummary::read(out)?;
    Ok(json!({
        "protocol": p.protocol,
        "average": summary.average,
        "tasks": summary.tasks.iter().map(|t| (t.task.clone(), t.accuracy)).collect::<std::collections::BTreeMap<_, _>>(),
    }))
}
