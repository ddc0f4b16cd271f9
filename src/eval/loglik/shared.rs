//! Context-shared log-likelihood scoring, the fast path of the loglik protocol.
//!
//! Requests with identical context token ids (the choices of one item in every task but
//! winogrande) form a group: the context is the prefix and the continuations the branches of one
//! [`CausalLm::branch_logits`] segment, so the context runs once and (in `model::Llama`'s packed
//! forward) no padding goes through the layers; the output projection runs only at the positions
//! that predict a continuation token.
//!
//! Guarantees: the scores are those of [`score_requests`] (same tokens, same positions, the same
//! f64 accumulation per token) up to float rounding of the differently shaped matmuls.
//! Requests that left truncation would cut (context + continuation > `max_len + 1`) are scored by
//! [`score_requests`] itself. Groups run longest first; a batch holds whole groups, up to
//! `batch_size` choice rows (a group with more choices than that runs alone). Results come back
//! in request order.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::score::{EncodedRequest, Scored, score_requests};
use crate::eval::error::{EvalError, Result};
use crate::eval::generate::math::scored_token;
use crate::lm::{Branches, CausalLm};

/// Score every request, sharing the context computation within groups of equal contexts.
pub fn score_requests_shared<M: CausalLm>(
    model: &M,
    requests: &[EncodedRequest],
    batch_size: usize,
    max_len: usize,
    pad_id: u32,
) -> Result<Vec<Scored>> {
    let mut out = vec![
        Scored {
            loglik: 0.0,
            is_greedy: true
        };
        requests.len()
    ];
    let mut fallback = Vec::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_context: HashMap<&[u32], usize> = HashMap::new();
    for (i, r) in requests.iter().enumerate() {
        if r.continuation.is_empty() {
            continue; // scores 0 and counts as greedy, as in `score_requests`
        }
        if r.context.is_empty() || r.context.len() + r.continuation.len() > max_len + 1 {
            fallback.push(i);
            continue;
        }
        let g = *by_context.entry(&r.context).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    // Longest first (fed tokens), so a batch that does not fit in memory fails early.
    let fed = |g: &Vec<usize>| {
        requests[g[0]].context.len()
            + g.iter()
                .map(|&i| requests[i].continuation.len() - 1)
                .sum::<usize>()
    };
    groups.sort_by_key(|g| (std::cmp::Reverse(fed(g)), g[0]));
    let mut start = 0;
    while start < groups.len() {
        let mut end = start + 1;
        let mut rows = groups[start].len();
        while end < groups.len() && rows + groups[end].len() <= batch_size.max(1) {
            rows += groups[end].len();
            end += 1;
        }
        for (i, s) in score_groups(model, requests, &groups[start..end])? {
            out[i] = s;
        }
        start = end;
    }
    if !fallback.is_empty() {
        let reqs: Vec<EncodedRequest> = fallback.iter().map(|&i| requests[i].clone()).collect();
        let scored = score_requests(model, &reqs, batch_size, max_len, pad_id)?;
        for (&i, s) in fallback.iter().zip(scored) {
            out[i] = s;
        }
    }
    Ok(out)
}

/// Run `f` on the f32 values of `t` (`[rows, vocab]`), borrowing the CPU storage when the tensor
/// is contiguous f32 and copying otherwise (other devices and dtypes).
fn with_host_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    if t.dtype() == DType::F32 && t.device().is_cpu() && t.is_contiguous() {
        let (storage, layout) = t.storage_and_layout();
        if let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(data)) = &*storage {
            let start = layout.start_offset();
            return Ok(f(&data[start..start + t.elem_count()]));
        }
    }
    let host = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&host))
}

/// Score the requests of `groups` (indices into `requests`, one shared context per group) with
/// one [`CausalLm::branch_logits`] call.
fn score_groups<M: CausalLm>(
    model: &M,
    requests: &[EncodedRequest],
    groups: &[Vec<usize>],
) -> Result<Vec<(usize, Scored)>> {
    let vocab = model.vocab_size();
    if let Some(&tok) = groups
        .iter()
        .flatten()
        .flat_map(|&i| &requests[i].continuation)
        .find(|&&t| t as usize >= vocab)
    {
        return Err(EvalError::Config(format!(
            "continuation token {tok} is outside the model's vocabulary of {vocab}"
        )));
    }
    let branches: Vec<Vec<&[u32]>> = groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|&i| requests[i].continuation.as_slice())
                .collect()
        })
        .collect();
    let segments: Vec<Branches<'_>> = groups
        .iter()
        .zip(&branches)
        .map(|(g, b)| Branches {
            prefix: &requests[g[0]].context,
            branches: b,
        })
        .collect();
    let logits = model
        .branch_logits(&segments)
        .map_err(EvalError::model("loglik forward"))?;
    let rows: usize = segments.iter().map(Branches::rows).sum();
    if logits.dims() != [rows, vocab] {
        return Err(EvalError::Config(format!(
            "the model returned logits {:?} for {rows} rows of {vocab}",
            logits.dims()
        )));
    }
    // (request, its segment's prefix row, the row of its first fed token): rows run segment by
    // segment, the prefix row first, then each branch's rows in order.
    let mut jobs = Vec::new();
    let mut at = 0;
    for g in groups {
        let prefix_row = at;
        at += 1;
        for &i in g {
            jobs.push((i, prefix_row, at));
            at += requests[i].continuation.len() - 1;
        }
    }
    with_host_f32(&logits, |all| {
        jobs.par_iter()
            .map(|&(i, prefix_row, first)| {
                let (mut loglik, mut is_greedy) = (0.0, true);
                // token 0 is predicted by the prefix row, token j > 0 by the branch's row j - 1
                for (j, &tok) in requests[i].continuation.iter().enumerate() {
                    let row = if j == 0 { prefix_row } else { first + j - 1 };
                    let l = &all[row * vocab..(row + 1) * vocab];
                    let (lp, greedy) = scored_token(l, tok as usize);
                    loglik += lp;
                    is_greedy &= greedy;
                }
                (i, Scored { loglik, is_greedy })
            })
            .collect()
    })
    .map_err(EvalError::model("reading loglik logits"))
}
