//! Context-shared log-likelihood scoring, the fast path of the loglik protocol.
//!
//! Requests with identical context token ids (the choices of one item in every task but
//! winogrande) run that context once:
//! 1. the contexts of several such groups go through the model in one left-padded batch, and only
//!    the last context position gets logits (it predicts each continuation's first token);
//! 2. the KV cache is repeated once per choice ([`IncrementalLm::reorder_cache`]);
//! 3. every choice's continuation except its last token is fed, right-padded, in one more step
//!    (skipped when all continuations are one token long, e.g. BoolQ's ` yes` / ` no`).
//!
//! Guarantees: the scores are those of [`score_requests`] (same tokens, same positions, the same
//! f64 accumulation per token) up to float rounding of the differently shaped matmuls.
//! Requests that left truncation would cut (context + continuation > `max_len + 1`), and every
//! remaining request once the model reports that it cannot reorder its cache, are scored by
//! [`score_requests`] itself. Groups run longest continuation first; a batch holds whole
//! groups, up to `batch_size` choice rows (a group with more choices than that runs alone).
//! Results come back in request order.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::score::{EncodedRequest, Scored, score_requests};
use crate::eval::error::{EvalError, Result};
use crate::eval::generate::math::{argmax, log_prob};
use crate::lm::IncrementalLm;

/// Score every request, sharing the context computation within groups of equal contexts.
pub fn score_requests_shared<M: IncrementalLm>(
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
    let longest = |g: &Vec<usize>| {
        g.iter()
            .map(|&i| requests[i].continuation.len())
            .max()
            .unwrap_or(0)
    };
    groups.sort_by_key(|g| {
        (
            std::cmp::Reverse(longest(g)),
            std::cmp::Reverse(requests[g[0]].context.len()),
            g[0],
        )
    });
    let mut start = 0;
    let mut can_reorder = true;
    while start < groups.len() {
        let mut end = start + 1;
        let mut rows = groups[start].len();
        while end < groups.len() && rows + groups[end].len() <= batch_size.max(1) {
            rows += groups[end].len();
            end += 1;
        }
        let batch = &groups[start..end];
        let scored = if can_reorder {
            score_groups(model, requests, batch, pad_id)?
        } else {
            None
        };
        match scored {
            Some(scored) => {
                for (i, s) in scored {
                    out[i] = s;
                }
            }
            None => {
                can_reorder = false;
                fallback.extend(batch.iter().flatten());
            }
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

/// Host copy of f32 logits, flattened.
fn host_logits(logits: &Tensor, what: &'static str) -> Result<Vec<f32>> {
    logits
        .to_dtype(DType::F32)
        .and_then(|l| l.flatten_all())
        .and_then(|l| l.to_vec1::<f32>())
        .map_err(EvalError::model(what))
}

/// Score the requests of `groups` (indices into `requests`, one shared context per group) in
/// two model calls; `None` when the model cannot reorder its cache.
fn score_groups<M: IncrementalLm>(
    model: &M,
    requests: &[EncodedRequest],
    groups: &[Vec<usize>],
    pad_id: u32,
) -> Result<Option<Vec<(usize, Scored)>>> {
    let device = model.device();
    let context = |g: &Vec<usize>| requests[g[0]].context.as_slice();
    let (m, wc) = (
        groups.len(),
        groups.iter().map(|g| context(g).len()).max().unwrap_or(1),
    );
    let mut ids = vec![pad_id; m * wc];
    let mut ctx_mask = vec![0u32; m * wc];
    for (gi, g) in groups.iter().enumerate() {
        let c = context(g);
        let at = gi * wc + wc - c.len();
        ids[at..at + c.len()].copy_from_slice(c);
        ctx_mask[at..at + c.len()].fill(1);
    }
    let ids = Tensor::from_vec(ids, (m, wc), device).map_err(EvalError::model("context ids"))?;
    let mask = Tensor::from_vec(ctx_mask.clone(), (m, wc), device)
        .map_err(EvalError::model("context mask"))?;
    let mut cache = model
        .new_cache(m)
        .map_err(EvalError::model("loglik new_cache"))?;
    let first = model
        .forward_step_last(&ids, &mask, &mut cache, 1)
        .map_err(EvalError::model("context forward"))?;
    let vocab = first.dim(2).map_err(EvalError::model("context logits"))?;
    let first = host_logits(&first, "reading context logits")?;

    // One row per choice: (group, request).
    let rows: Vec<(usize, usize)> = groups
        .iter()
        .enumerate()
        .flat_map(|(gi, g)| g.iter().map(move |&i| (gi, i)))
        .collect();
    if let Some(&tok) = rows
        .iter()
        .flat_map(|&(_, i)| &requests[i].continuation)
        .find(|&&t| t as usize >= vocab)
    {
        return Err(EvalError::Config(format!(
            "continuation token {tok} is outside the model's vocabulary of {vocab}"
        )));
    }
    let wk = rows
        .iter()
        .map(|&(_, i)| requests[i].continuation.len() - 1)
        .max()
        .unwrap_or(0);
    let rest = if wk == 0 {
        Vec::new()
    } else {
        let src: Vec<u32> = rows.iter().map(|&(g, _)| g as u32).collect();
        if !model
            .reorder_cache(&mut cache, &src)
            .map_err(EvalError::model("loglik reorder_cache"))?
        {
            return Ok(None);
        }
        let r = rows.len();
        let mut ids = vec![pad_id; r * wk];
        let mut mask = Vec::with_capacity(r * (wc + wk));
        for (row, &(g, i)) in rows.iter().enumerate() {
            let feed = &requests[i].continuation[..requests[i].continuation.len() - 1];
            ids[row * wk..row * wk + feed.len()].copy_from_slice(feed);
            mask.extend_from_slice(&ctx_mask[g * wc..(g + 1) * wc]);
            mask.extend((0..wk).map(|j| u32::from(j < feed.len())));
        }
        let ids =
            Tensor::from_vec(ids, (r, wk), device).map_err(EvalError::model("continuation ids"))?;
        let mask = Tensor::from_vec(mask, (r, wc + wk), device)
            .map_err(EvalError::model("continuation mask"))?;
        let logits = model
            .forward_step(&ids, &mask, &mut cache)
            .map_err(EvalError::model("continuation forward"))?;
        host_logits(&logits, "reading continuation logits")?
    };
    // Position 0 of a continuation is predicted by its context's last position, position j > 0
    // by the continuation step's position j - 1.
    let scored = rows
        .par_iter()
        .enumerate()
        .map(|(row, &(g, i))| {
            let (mut loglik, mut is_greedy) = (0.0, true);
            for (j, &tok) in requests[i].continuation.iter().enumerate() {
                let at = if j == 0 {
                    g * vocab
                } else {
                    (row * wk + j - 1) * vocab
                };
                let logits = if j == 0 { &first } else { &rest };
                let l = &logits[at..at + vocab];
                loglik += log_prob(l, tok as usize);
                is_greedy &= argmax(l) == tok;
            }
            (i, Scored { loglik, is_greedy })
        })
        .collect();
    Ok(Some(scored))
}
