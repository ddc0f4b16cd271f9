//! Run the llm-adapters protocol over one task's items.

use std::collections::BTreeMap;
use std::time::Instant;

use super::extract::{Extractor, response_text};
use super::prompt::{answer_label, eval_prompt, instruction};
use crate::eval::codec::TextCodec;
use crate::eval::config::{EvalConfig, Progress};
use crate::eval::error::{EvalError, Result};
use crate::eval::generate::generate;
use crate::eval::results::{GenerationPrediction, Prediction, Protocol, TaskResult};
use crate::eval::task::{McItem, Task};
use crate::lm::IncrementalLm;

/// Evaluate `items` of `task`; predictions come back in item order.
pub fn run_task<M: IncrementalLm>(
    model: &M,
    codec: &TextCodec,
    task: &Task,
    items: &[McItem],
    cfg: &EvalConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(TaskResult, Vec<Prediction>)> {
    let started = Instant::now();
    let prompts: Vec<String> = items
        .iter()
        .map(|it| eval_prompt(&instruction(task.kind, it)))
        .collect();
    let encoded: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| codec.encode(p, cfg.add_special_tokens))
        .collect::<Result<_>>()?;
    // Longest first, so rows of a batch have similar lengths; results do not depend on the order.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(encoded[i].len()), i));
    let mut outputs = vec![None; items.len()];
    let mut done = 0;
    for chunk in order.chunks(cfg.batch_size.max(1)) {
        let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| encoded[i].clone()).collect();
        let generated = generate(model, &batch, codec.eos_ids, codec.pad_id, &cfg.generation)?;
        for (&i, g) in chunk.iter().zip(generated) {
            outputs[i] = Some(g);
        }
        done += chunk.len();
        progress(Progress::Advanced {
            task: &task.name,
            done,
            total: items.len(),
        });
    }
    let mut preds = Vec::with_capacity(items.len());
    let (mut correct, mut unparseable, mut new_tokens) = (0, 0, 0);
    let mut extractors: BTreeMap<usize, Extractor> = BTreeMap::new();
    for ((item, prompt), out) in items.iter().zip(prompts).zip(outputs) {
        let out = out.unwrap_or_default();
        new_tokens += out.tokens.len();
        let text = codec.decode(&out.tokens)?;
        let response = response_text(&text).to_string();
        let n_choices = item.choices.len();
        let extractor = extractors
            .entry(n_choices)
            .or_insert_with(|| Extractor::new(task.kind, n_choices));
        let prediction = extractor.extract(&response);
        let label = answer_label(task.kind, item.label).ok_or_else(|| EvalError::BadItem {
            task: task.name.clone(),
            id: item.id_text(),
            message: format!("label {} has no answer word", item.label),
        })?;
        let ok = prediction.as_deref() == Some(label.as_str());
        correct += ok as usize;
        unparseable += prediction.is_none() as usize;
        preds.push(Prediction::Generation(GenerationPrediction {
            id: item.id.clone(),
            prompt,
            output: response,
            prediction,
            label,
            correct: ok,
        }));
    }
    let n = items.len();
    let rate = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let result = TaskResult {
        task: task.name.clone(),
        kind: task.kind,
        protocol: Protocol::LlmAdapters,
        n,
        correct,
        accuracy: rate(correct),
        acc_norm: None,
        unparseable: Some(unparseable),
        unparseable_rate: Some(rate(unparseable)),
        generated_tokens: Some(new_tokens),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((result, preds))
}
