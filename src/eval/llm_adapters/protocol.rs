//! Run the llm-adapters protocol over one task's items.

use std::time::Instant;

use super::extract::response_text;
use crate::eval::codec::TextCodec;
use crate::eval::config::{EvalConfig, Progress};
use crate::eval::error::Result;
use crate::eval::evaluate::Prepared;
use crate::eval::generate::generate;
use crate::eval::results::{GenerationPrediction, Prediction, Protocol, TaskResult};
use crate::lm::IncrementalLm;

/// Evaluate a prepared task: `prompts[i]` is item i's prompt and `answers[i]` its choices' answer
/// words; predictions come back in item order.
pub fn run_task<M: IncrementalLm>(
    model: &M,
    codec: &TextCodec,
    p: &Prepared,
    prompts: &[String],
    answers: &[Vec<String>],
    cfg: &EvalConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(TaskResult, Vec<Prediction>)> {
    let started = Instant::now();
    let task = &p.task;
    let items = &p.items;
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
    for (((item, prompt), out), words) in items.iter().zip(prompts).zip(outputs).zip(answers) {
        let out = out.unwrap_or_default();
        new_tokens += out.tokens.len();
        let text = codec.decode(&out.tokens)?;
        let response = response_text(&text).to_string();
        let prediction = p.compiled.extract(&response, words);
        // invariant: `prepare` rendered one answer word per choice and labels are in range.
        let label = words[item.label].clone();
        let ok = prediction
            .as_deref()
            .is_some_and(|x| p.compiled.matches(x, &label));
        correct += ok as usize;
        unparseable += prediction.is_none() as usize;
        preds.push(Prediction::Generation(GenerationPrediction {
            id: item.id.clone(),
            prompt: prompt.clone(),
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
        rows: Some(p.rows),
        correct,
        accuracy: rate(correct),
        acc_stderr: stderr_of(&preds, Prediction::correct),
        acc_norm: None,
        acc_norm_stderr: None,
        unparseable: Some(unparseable),
        unparseable_rate: Some(rate(unparseable)),
        generated_tokens: Some(new_tokens),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((result, preds))
}

/// lm-eval's standard error of a mean over the predictions' 0/1 outcomes.
pub(crate) fn stderr_of(preds: &[Prediction], f: impl Fn(&Prediction) -> bool) -> Option<f64> {
    let xs: Vec<f64> = preds.iter().map(|p| f(p) as u8 as f64).collect();
    crate::eval::stats::mean_stderr(&xs)
}
