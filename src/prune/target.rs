//! Structured pruning to a parameter budget: the removal ratio (the same for KV groups and FFN
//! channels, layer by layer) whose pruned model has at most a target number of parameters.
//! The count is predicted from the config alone with the same rounding as
//! [`super::structured::plan_structured`] (per layer: `round(ratio * count)` removed, one kept).

use super::error::{PruneError, Result};
use crate::model::config::LlamaConfig;

fn removed(ratio: f64, n: usize) -> usize {
    ((ratio * n as f64).round() as usize).min(n.saturating_sub(1))
}

/// Base parameters of `cfg` after a per-layer structured prune with `ratio` for heads and FFN.
pub fn predicted_params(cfg: &LlamaConfig, ratio: f64) -> usize {
    let (h, d) = (cfg.hidden_size, cfg.head_dim);
    let embed = cfg.vocab_size * h * if cfg.tie_word_embeddings { 1 } else { 2 };
    let layers: usize = cfg
        .layers
        .iter()
        .map(|l| {
            let rep = l.n_heads / l.n_kv_heads.max(1);
            let kv = l.n_kv_heads - removed(ratio, l.n_kv_heads);
            let f = l.intermediate_size - removed(ratio, l.intermediate_size);
            2 * h + 2 * h * kv * rep * d + 2 * h * kv * d + 3 * h * f
        })
        .sum();
    embed + layers + h
}

/// The smallest ratio in `[0, 1)` (to 1e-9) whose predicted count is at most `target`.
pub fn ratio_for_target(cfg: &LlamaConfig, target: usize) -> Result<f64> {
    if predicted_params(cfg, 0.0) <= target {
        return Ok(0.0);
    }
    let mut hi = 1.0 - 1e-12;
    let floor = predicted_params(cfg, hi);
    if floor > target {
        return Err(PruneError::Plan(format!(
            "target of {target} parameters is below {floor}, what keeping one KV group and one FFN \
             channel per layer leaves"
        )));
    }
    let mut lo = 0.0;
    while hi - lo > 1e-9 {
        let mid = 0.5 * (lo + hi);
        if predicted_params(cfg, mid) <= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}
