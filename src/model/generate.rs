//! Greedy generation (batched, left-padded, KV cache) and perplexity, on top of [`Llama`].

use candle_core::{D, DType, Device, IndexOp, Result, Tensor};

use super::llama::Llama;
use crate::lm::IncrementalLm;

/// Greedy continuation of each prompt, at most `max_new` tokens, stopping a row at any `eos`
/// (the eos token is kept in the output). Rows are left-padded with `pad`, so the result for a
/// row is the same as generating it alone.
pub fn greedy(
    model: &Llama,
    prompts: &[Vec<u32>],
    max_new: usize,
    eos: &[u32],
    pad: u32,
) -> Result<Vec<Vec<u32>>> {
    let dev = model.embed_tokens().device().clone();
    let b = prompts.len();
    let t = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if b == 0 || max_new == 0 {
        return Ok(vec![vec![]; b]);
    }
    if prompts.iter().any(Vec::is_empty) {
        candle_core::bail!("greedy generation needs a non-empty prompt in every row");
    }
    let mut ids = Vec::with_capacity(b * t);
    let mut mask: Vec<Vec<u32>> = Vec::with_capacity(b);
    for p in prompts {
        let padn = t - p.len();
        ids.extend(std::iter::repeat_n(pad, padn).chain(p.iter().copied()));
        mask.push(
            std::iter::repeat_n(0, padn)
                .chain(std::iter::repeat_n(1, p.len()))
                .collect(),
        );
    }
    let mut cache = model.new_cache(b)?;
    let mut input = Tensor::from_vec(ids, (b, t), &dev)?;
    let mut out = vec![Vec::new(); b];
    let mut done = vec![false; b];
    for _ in 0..max_new {
        let m = mask_tensor(&mask, &dev)?;
        let hidden = model.forward_hidden(&input, &m, Some(&mut cache))?;
        let last = hidden.i((.., hidden.dim(1)? - 1..))?;
        let next = model
            .logits(&last)?
            .argmax(D::Minus1)?
            .flatten_all()?
            .to_vec1::<u32>()?;
        for (r, &tok) in next.iter().enumerate() {
            if !done[r] {
                out[r].push(tok);
                done[r] = eos.contains(&tok);
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        for row in &mut mask {
            row.push(1);
        }
        input = Tensor::from_vec(next, (b, 1), &dev)?;
    }
    Ok(out)
}

fn mask_tensor(mask: &[Vec<u32>], dev: &Device) -> Result<Tensor> {
    let (b, t) = (mask.len(), mask.first().map_or(0, Vec::len));
    Tensor::from_vec(mask.concat(), (b, t), dev)
}

/// Sum of negative log-likelihoods of `ids[1..]` given their prefixes, and how many tokens
/// were scored. Sequences longer than `window` are cut into consecutive windows (each scored
/// without the previous window's context).
pub fn nll(model: &Llama, ids: &[u32], window: usize) -> Result<(f64, usize)> {
    let dev = model.embed_tokens().device().clone();
    let window = window.max(2);
    let (mut total, mut n) = (0f64, 0usize);
    for chunk in ids.chunks(window) {
        if chunk.len() < 2 {
            continue;
        }
        let t = chunk.len();
        let input = Tensor::from_slice(chunk, (1, t), &dev)?;
        let mask = Tensor::ones((1, t), DType::U32, &dev)?;
        let hidden = model.forward_hidden(&input, &mask, None)?;
        let logits = model.logits(&hidden.i((.., ..t - 1))?)?.squeeze(0)?;
        let max = logits.max_keepdim(D::Minus1)?;
        let lse = (logits
            .broadcast_sub(&max)?
            .exp()?
            .sum_keepdim(D::Minus1)?
            .log()?
            + max)?;
        let targets = Tensor::from_slice(&chunk[1..], (t - 1, 1), &dev)?;
        let picked = logits.gather(&targets, 1)?;
        let nll = (lse - picked)?.sum_all()?.to_scalar::<f32>()?;
        total += f64::from(nll);
        n += t - 1;
    }
    Ok((total, n))
}
