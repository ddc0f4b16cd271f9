//! Batched generation: greedy and beam search over an [`IncrementalLm`], with LEFT padding,
//! attention masks and the model's KV cache.
//!
//! Guarantees:
//! - each prompt's output depends only on that prompt (padding is masked, position ids come from
//!   the mask), so a batch gives the same tokens as batch size 1 on an exact model;
//! - a row stops at its first end-of-sequence id (not included in the output) or after
//!   `max_new_tokens`;
//! - `num_beams <= 1` is greedy (first maximal logit); otherwise HF-style beam search
//!   (see [`beam`]). Beam search reorders the KV cache through
//!   [`IncrementalLm::reorder_cache`] and recomputes each step without a cache when the model
//!   cannot reorder.

mod beam;
mod greedy;
pub(crate) use crate::cpu::math;
mod stepper;

use serde::{Deserialize, Serialize};

use crate::lm::IncrementalLm;

use super::error::Result;

/// Decoding settings. Defaults follow LLM-Adapters' commonsense_evaluate.py (4 beams, 32 new tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    /// 1 = greedy.
    pub num_beams: usize,
    /// Beam scores are `sum log p / len^length_penalty` (len = generated tokens, EOS included).
    pub length_penalty: f64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 32,
            num_beams: 4,
            length_penalty: 1.0,
        }
    }
}

/// The generated continuation of one prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    /// New tokens, without the end-of-sequence token.
    pub tokens: Vec<u32>,
    /// True when the row ended with an end-of-sequence token (false: hit `max_new_tokens`).
    pub finished: bool,
}

/// Generate a continuation for each prompt (one batch; callers chunk).
pub fn generate<M: IncrementalLm>(
    model: &M,
    prompts: &[Vec<u32>],
    eos_ids: &[u32],
    pad_id: u32,
    cfg: &GenerationConfig,
) -> Result<Vec<Generated>> {
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if cfg.num_beams <= 1 {
        greedy::greedy(model, prompts, eos_ids, pad_id, cfg.max_new_tokens)
    } else {
        beam::beam_search(model, prompts, eos_ids, pad_id, cfg)
    }
}

#[cfg(test)]
mod tests;
