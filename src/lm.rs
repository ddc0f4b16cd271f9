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

/// A shared prefix and the branches that continue it (the choices of one multiple-choice item).
#[derive(Debug, Clone, Copy)]
pub struct Branches<'a> {
    /// Non-empty.
    pub prefix: &'a [u32],
    /// Each branch continues `prefix`; an empty branch contributes no row.
    pub branches: &'a [&'a [u32]],
}

impl Branches<'_> {
    /// Rows of [`CausalLm::branch_logits`] for this segment: one for the prefix, then
    /// `len - 1` per non-empty branch.
    pub fn rows(&self) -> usize {
        1 + self
            .branches
            .iter()
            .map(|b| b.len().saturating_sub(1))
            .sum::<usize>()
    }

    /// Tokens a packed forward feeds for this segment (the prefix and every branch but its last
    /// token): equal to [`Branches::rows`] - 1 + `prefix.len()`.
    pub fn fed(&self) -> usize {
        self.prefix.len() + self.rows() - 1
    }
}

/// A causal language model that can score whole sequences.
pub trait CausalLm {
    /// Logits for every position. See the module docs for shapes and the mask convention.
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor>;
    fn vocab_size(&self) -> usize;
    fn device(&self) -> &Device;

    /// Next-token logits for branches that share a prefix: `[rows, vocab]` f32 where, segment by
    /// segment, the first row follows `prefix` (it predicts every branch's first token) and then,
    /// branch by branch, row `j` (`j = 1..len`) follows `prefix + branch[..j]` (it predicts
    /// `branch[j]`). A branch's last token is never fed. Positions are `0..` along each
    /// prefix-and-branch path, as in an unpadded forward of `prefix + branch`.
    ///
    /// The default runs [`CausalLm::forward`] on every `prefix + branch[..len - 1]`, right padded
    /// in one batch (the prefix alone when a segment has no non-empty branch). Models override it
    /// with a packed forward that runs each prefix once and no padding through the layers.
    fn branch_logits(&self, segments: &[Branches<'_>]) -> Result<Tensor> {
        branch_logits_by_forward(self, segments)
    }

    /// The logits of [`CausalLm::forward`] at the flattened positions `rows` (`row * seq + i`),
    /// `[rows.len(), vocab]` f32, differentiable like `forward`. The training loss asks only for
    /// its loss positions (no padding, no masked prompt tokens); models override this to run the
    /// output projection only there. The default indexes the full forward.
    fn logits_at(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: &[u32],
    ) -> Result<Tensor> {
        let logits = self.forward(input_ids, attention_mask)?;
        let (b, t, v) = logits.dims3()?;
        let idx = Tensor::new(rows, logits.device())?;
        logits.reshape((b * t, v))?.index_select(&idx, 0)
    }
}

/// The reference implementation of [`CausalLm::branch_logits`] (the trait's default).
pub fn branch_logits_by_forward<M: CausalLm + ?Sized>(
    model: &M,
    segments: &[Branches<'_>],
) -> Result<Tensor> {
    // One input row per non-empty branch (or per segment without one): (segment, branch).
    let mut inputs: Vec<(usize, Option<usize>, Vec<u32>)> = Vec::new();
    for (si, seg) in segments.iter().enumerate() {
        if seg.prefix.is_empty() {
            candle_core::bail!("branch_logits: segment {si} has an empty prefix");
        }
        let before = inputs.len();
        for (bi, b) in seg
            .branches
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
        {
            let mut ids = seg.prefix.to_vec();
            ids.extend_from_slice(&b[..b.len() - 1]);
            inputs.push((si, Some(bi), ids));
        }
        if inputs.len() == before {
            inputs.push((si, None, seg.prefix.to_vec()));
        }
    }
    let device = model.device();
    if inputs.is_empty() {
        return Tensor::zeros((0, model.vocab_size()), candle_core::DType::F32, device);
    }
    let width = inputs.iter().map(|(_, _, x)| x.len()).max().unwrap_or(1);
    let n = inputs.len();
    let mut ids = vec![0u32; n * width];
    let mut mask = vec![0u32; n * width];
    for (row, (_, _, x)) in inputs.iter().enumerate() {
        ids[row * width..row * width + x.len()].copy_from_slice(x);
        mask[row * width..row * width + x.len()].fill(1);
    }
    let logits = model.forward(
        &Tensor::from_vec(ids, (n, width), device)?,
        &Tensor::from_vec(mask, (n, width), device)?,
    )?;
    let mut parts = Vec::new();
    let mut next = 0;
    for (si, seg) in segments.iter().enumerate() {
        let lp = seg.prefix.len();
        let first = next;
        parts.push(logits.get(first)?.narrow(0, lp - 1, 1)?);
        while next < n && inputs[next].0 == si {
            if let (_, Some(bi), _) = inputs[next] {
                let fed = seg.branches[bi].len() - 1;
                if fed > 0 {
                    parts.push(logits.get(next)?.narrow(0, lp, fed)?);
                }
            }
            next += 1;
        }
    }
    Tensor::cat(&parts, 0)?.to_dtype(candle_core::DType::F32)
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
