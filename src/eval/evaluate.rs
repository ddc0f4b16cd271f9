//! The entry point: load each task, subsample, run the protocol, collect results.

use std::collections::BTreeMap;

use super::codec::TextCodec;
use super::config::{EvalConfig, Progress};
use super::error::{EvalError, Result};
use super::results::{EvalResults, EvalSummary, Protocol};
use super::subsample::subsample_indices;
use super::{llm_adapters, loglik};
use crate::lm::IncrementalLm;

/// Evaluate `model` on every task of `cfg`. Tasks run in the order given; results are labelled
/// with the protocol; predictions are in file order of the selected items.
pub fn evaluate<M: IncrementalLm>(
    model: &M,
    codec: &TextCodec,
    cfg: &EvalConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<EvalResults> {
    if cfg.tasks.is_empty() {
        return Err(EvalError::Config("no tasks".into()));
    }
    if cfg.batch_size == 0 {
        return Err(EvalError::Config("batch size must be at least 1".into()));
    }
    if cfg.protocol == Protocol::LlmAdapters && codec.eos_ids.is_empty() {
        return Err(EvalError::Config(
            "generation needs at least one end-of-sequence id".into(),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    if let Some(dup) = cfg.tasks.iter().find(|t| !names.insert(t.name.as_str())) {
        return Err(EvalError::Config(format!(
            "task `{}` is listed twice",
            dup.name
        )));
    }
    let mut results = Vec::with_capacity(cfg.tasks.len());
    let mut predictions = BTreeMap::new();
    for task in &cfg.tasks {
        let all = task.load()?;
        let items: Vec<_> = subsample_indices(all.len(), cfg.limit, cfg.seed)
            .into_iter()
            .map(|i| all[i].clone())
            .collect();
        progress(Progress::TaskStarted {
            task: &task.name,
            items: items.len(),
        });
        let (result, preds) = match cfg.protocol {
            Protocol::LlmAdapters => {
                llm_adapters::run_task(model, codec, task, &items, cfg, progress)?
            }
            Protocol::Loglik => loglik::run_task(model, codec, task, &items, cfg, progress)?,
        };
        progress(Progress::TaskFinished {
            task: &task.name,
            accuracy: result.accuracy,
        });
        results.push(result);
        predictions.insert(task.name.clone(), preds);
    }
    let generation = (cfg.protocol == Protocol::LlmAdapters).then(|| cfg.generation.clone());
    Ok(EvalResults {
        summary: EvalSummary::new(cfg.protocol, results, cfg.limit, cfg.seed, generation),
        predictions,
    })
}
