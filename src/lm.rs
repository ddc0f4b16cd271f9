//! The contract between the model and everything that drives it (training, evaluation, the executor).
//!
//! `model::Llama` implements these traits; `train` and `eval` are written against them so that
//! they can be tested on toy models and stay independent of how a model was loaded.
//!
//! Conventions shared by every implementation:
//! - `input_ids`: `[batch, seq]` `u32`.
//! - `attention_mask`: `[batch, seq]` `u32`, 1 = real token, 0 = padding. Padding may sit on the
//!   left (generation) or on the right (training). Position ids are derived from the mask
//!   (`cumsum(mask) - 1`, clamped at 0, as HF does), so a left-padded row gives the same logits
//!   for its real tokens as the same row unpadded.
//! - Returned logits are `f32`, `[batch, seq, vocab]`, for every position (not only the last).

use candle_core::{Device, Result, Tensor, Var};

/// A causal language model that can score whole sequences.
pub trait CausalLm {
    /// Logits for every position. See the module docs for shapes and the mask convention.
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor>;
    fn vocab_size(&self) -> usize;
    fn device(&self) -> &Device;
}

/// Incremental decoding with a key/value cache (generation).
pub trait IncrementalLm: CausalLm {
    type Cache;
    /// A fresh cache for `batch` rows.
    fn new_cache(&self, batch: usize) -> Result<Self::Cache>;
    /// Feed `input_ids` (`[batch, new]`) after what the cache already holds. `attention_mask` covers
    /// the whole sequence so far, cached positions included (`[batch, cached + new]`).
    /// Returns the logits of the new positions, `[batch, new, vocab]`.
    fn forward_step(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        cache: &mut Self::Cache,
    ) -> Result<Tensor>;

    /// [`IncrementalLm::forward_step`] returning only the logits of the last `keep` new positions
    /// (`[batch, min(keep, new), vocab]`; HF's `logits_to_keep`); the cache still grows by every
    /// new position. Models override it to skip the output projection of the other positions.
    fn forward_step_last(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        cache: &mut Self::Cache,
        keep: usize,
    ) -> Result<Tensor> {
        let logits = self.forward_step(input_ids, attention_mask, cache)?;
        let t = logits.dim(1)?;
        let keep = keep.min(t);
        logits.narrow(1, t - keep, keep)
    }

    /// Rearrange the cache's rows for beam search: afterwards row `i` holds what row `rows[i]`
    /// held (repeats allowed, the row count may change). Returns `Ok(false)` when the model does
    /// not support it (the default); beam search then recomputes each step without a cache.
    fn reorder_cache(&self, _cache: &mut Self::Cache, _rows: &[u32]) -> Result<bool> {
        Ok(false)
    }
}

/// A model whose adapter parameters can be trained.
pub trait TrainableLm: CausalLm {
    /// Every trainable variable with its PEFT-style name
    /// (e.g. `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`), in a stable order.
    /// Base weights are never in this list.
    fn trainable_vars(&self) -> Vec<(String, Var)>;
    /// Switch adapter dropout on (training) or off (evaluation).
    fn set_training(&self, training: bool);
    /// Seed the dropout masks of the following forward passes. The trainer calls this before
    /// every micro-batch with a value drawn from its checkpointed RNG stream, so a resumed run
    /// draws the same masks as an uninterrupted one. Models without dropout ignore it.
    fn set_dropout_seed(&self, _seed: u64) {}
}
