//! Batched log-likelihood of continuations given contexts, as lm-eval's `HFLM`:
//! - tokenization boundary (`_encode_pair`): trailing whitespace of the context moves to the
//!   continuation, then `whole = encode(context + continuation)`, `ctx = encode(context)`, and the
//!   continuation tokens are `whole[len(ctx)..]`; an empty context is replaced by the EOS token;
//! - the model sees `(ctx + cont)[-(max_len + 1)..][..-1]` (left truncation) and the score is the sum
//!   of `log_softmax` at the continuation tokens; `is_greedy` says whether every continuation token
//!   was the argmax;
//! - requests run longest first in right-padded batches; results come back in request order.

use candle_core::{DType, Tensor};

use super::prompt::ChoiceRequest;
use crate::eval::codec::TextCodec;
use crate::eval::error::{EvalError, Result};
use crate::eval::generate::math::scored_token;
use crate::lm::CausalLm;

/// Token ids of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRequest {
    pub context: Vec<u32>,
    pub continuation: Vec<u32>,
}

/// The score of one continuation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub loglik: f64,
    pub is_greedy: bool,
}

/// lm-eval's `_encode_pair` (no special tokens, as lm-eval's causal `HFLM` without `add_bos_token`).
pub fn encode_pair(codec: &TextCodec, req: &ChoiceRequest) -> Result<EncodedRequest> {
    let trimmed = req.context.trim_end();
    let moved = &req.context[trimmed.len()..];
    let continuation = format!("{moved}{}", req.continuation);
    let whole = codec.encode(&format!("{trimmed}{continuation}"), false)?;
    let mut context = codec.encode(trimmed, false)?;
    let split = context.len().min(whole.len());
    let cont = whole[split..].to_vec();
    if context.is_empty() {
        let eos = codec
            .eos_ids
            .first()
            .copied()
            .ok_or_else(|| EvalError::Config("empty context needs an EOS id".into()))?;
        context = vec![eos];
    }
    Ok(EncodedRequest {
        context,
        continuation: cont,
    })
}

/// Score every request; `batch_size` sequences per forward, at most `max_len` tokens each.
pub fn score_requests<M: CausalLm>(
    model: &M,
    requests: &[EncodedRequest],
    batch_size: usize,
    max_len: usize,
    pad_id: u32,
) -> Result<Vec<Scored>> {
    let mut order: Vec<usize> = (0..requests.len()).collect();
    let total = |i: usize| requests[i].context.len() + requests[i].continuation.len();
    order.sort_by_key(|&i| (std::cmp::Reverse(total(i)), i));
    let mut out = vec![
        Scored {
            loglik: 0.0,
            is_greedy: true
        };
        requests.len()
    ];
    for chunk in order.chunks(batch_size.max(1)) {
        let scored = score_batch(model, chunk.iter().map(|&i| &requests[i]), max_len, pad_id)?;
        for (&i, s) in chunk.iter().zip(scored) {
            out[i] = s;
        }
    }
    Ok(out)
}

/// The model input of one request after truncation, where the scored logits start, and how
/// many continuation tokens are scored (all of them unless truncation ate into the continuation).
pub(super) fn model_input(req: &EncodedRequest, max_len: usize) -> (Vec<u32>, usize, usize) {
    let mut full: Vec<u32> = req
        .context
        .iter()
        .chain(&req.continuation)
        .copied()
        .collect();
    let keep = full.len().min(max_len + 1);
    full.drain(..full.len() - keep);
    full.pop();
    // Input position p predicts full token p + 1, so the last `n` tokens are predicted from
    // positions `len - n .. len`.
    let n = req.continuation.len().min(full.len());
    let start = full.len() - n;
    (full, start, n)
}

fn score_batch<'r, M: CausalLm>(
    model: &M,
    reqs: impl Iterator<Item = &'r EncodedRequest>,
    max_len: usize,
    pad_id: u32,
) -> Result<Vec<Scored>> {
    let reqs: Vec<&EncodedRequest> = reqs.collect();
    let inputs: Vec<(Vec<u32>, usize, usize)> =
        reqs.iter().map(|r| model_input(r, max_len)).collect();
    let width = inputs
        .iter()
        .map(|(x, _, _)| x.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let b = reqs.len();
    let mut ids = vec![pad_id; b * width];
    let mut mask = vec![0u32; b * width];
    for (row, (x, _, _)) in inputs.iter().enumerate() {
        ids[row * width..row * width + x.len()].copy_from_slice(x);
        mask[row * width..row * width + x.len()].fill(1);
    }
    let device = model.device();
    let ids = Tensor::from_vec(ids, (b, width), device).map_err(EvalError::model("loglik ids"))?;
    let mask =
        Tensor::from_vec(mask, (b, width), device).map_err(EvalError::model("loglik mask"))?;
    let logits = model
        .forward(&ids, &mask)
        .map_err(EvalError::model("loglik forward"))?;
    let mut out = Vec::with_capacity(b);
    for (row, (req, (_, start, n))) in reqs.iter().zip(&inputs).enumerate() {
        let cont = &req.continuation[req.continuation.len() - n..];
        if cont.is_empty() {
            out.push(Scored {
                loglik: 0.0,
                is_greedy: true,
            });
            continue;
        }
        let rows = logits
            .get(row)
            .and_then(|l| l.narrow(0, *start, cont.len()))
            .and_then(|l| l.to_dtype(DType::F32))
            .and_then(|l| l.to_vec2::<f32>())
            .map_err(EvalError::model("reading loglik logits"))?;
        let mut loglik = 0.0;
        let mut is_greedy = true;
        if let Some(&tok) = cont.iter().find(|&&t| t as usize >= model.vocab_size()) {
            return Err(EvalError::Config(format!(
                "continuation token {tok} is outside the model's vocabulary of {}",
                model.vocab_size()
            )));
        }
        for (logit_row, &tok) in rows.iter().zip(cont) {
            let (lp, greedy) = scored_token(logit_row, tok as usize);
            loglik += lp;
            is_greedy &= greedy;
        }
        out.push(Scored { loglik, is_greedy });
    }
    Ok(out)
}
