//! Run the loglik protocol over one task's items.

use std::time::Instant;

use super::prompt::ChoiceRequest;
use super::score::{EncodedRequest, encode_pair};
use super::shared::score_requests_shared;
use crate::eval::codec::TextCodec;
use crate::eval::config::{EvalConfig, Progress};
use crate::eval::error::Result;
use crate::eval::evaluate::Prepared;
use crate::eval::llm_adapters::stderr_of;
use crate::eval::results::{LoglikPrediction, Prediction, Protocol, TaskResult};
use crate::lm::IncrementalLm;

/// Items scored per call of `score_requests_shared` (sorted by length inside), for progress reports.
const ITEMS_PER_BLOCK: usize = 64;

/// Index of the first maximum.
fn first_argmax(xs: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Evaluate a prepared task whose item i has the requests `reqs[i]`; predictions come back in
/// item order.
pub fn run_task<M: IncrementalLm>(
    model: &M,
    codec: &TextCodec,
    p: &Prepared,
    reqs: &[Vec<ChoiceRequest>],
    cfg: &EvalConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(TaskResult, Vec<Prediction>)> {
    let started = Instant::now();
    let (task, items) = (&p.task, &p.items);
    let mut preds = Vec::with_capacity(items.len());
    let (mut correct, mut correct_norm) = (0, 0);
    let blocks = items
        .chunks(ITEMS_PER_BLOCK)
        .zip(reqs.chunks(ITEMS_PER_BLOCK));
    for (block_no, (block, block_reqs)) in blocks.enumerate() {
        let encoded: Vec<EncodedRequest> = block_reqs
            .iter()
            .flatten()
            .map(|r| encode_pair(codec, r))
            .collect::<Result<_>>()?;
        let scored =
            score_requests_shared(model, &encoded, cfg.batch_size, cfg.max_len, codec.pad_id)?;
        let mut next = scored.into_iter();
        for (item, item_reqs) in block.iter().zip(block_reqs) {
            let scores: Vec<f64> = next
                .by_ref()
                .take(item_reqs.len())
                .map(|s| s.loglik)
                .collect();
            let scores_norm: Vec<f64> = scores
                .iter()
                .zip(item_reqs)
                .map(|(s, r)| s / r.norm_chars.max(1) as f64)
                .collect();
            let prediction = first_argmax(&scores);
            let prediction_norm = first_argmax(&scores_norm);
            let ok = prediction == item.label;
            let ok_norm = prediction_norm == item.label;
            correct += ok as usize;
            correct_norm += ok_norm as usize;
            preds.push(Prediction::Loglik(LoglikPrediction {
                id: item.id.clone(),
                contexts: item_reqs.iter().map(|r| r.context.clone()).collect(),
                continuations: item_reqs.iter().map(|r| r.continuation.clone()).collect(),
                scores,
                scores_norm,
                prediction,
                prediction_norm,
                label: item.label,
                correct: ok,
                correct_norm: ok_norm,
            }));
        }
        let done = (block_no * ITEMS_PER_BLOCK + block.len()).min(items.len());
        progress(Progress::Advanced {
            task: &task.name,
            done,
            total: items.len(),
        });
    }
    let n = items.len();
    let rate = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let norm_of = |p: &Prediction| matches!(p, Prediction::Loglik(l) if l.correct_norm);
    let result = TaskResult {
        task: task.name.clone(),
        kind: task.kind,
        protocol: Protocol::Loglik,
        n,
        rows: Some(p.rows),
        correct,
        accuracy: rate(correct),
        acc_stderr: stderr_of(&preds, Prediction::correct),
        acc_norm: Some(rate(correct_norm)),
        acc_norm_stderr: stderr_of(&preds, norm_of),
        unparseable: None,
        unparseable_rate: None,
        generated_tokens: None,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((result, preds))
}
