//! The packed layout of [`crate::lm::CausalLm::branch_logits`]: prefixes and their branches as one
//! unpadded token stream for the projections and the MLP, and a padded per-segment view for
//! attention only.
//!
//! Segment `s` feeds its prefix, then every branch but the branch's last token, one after the
//! other: `fed(s) = len(prefix) + sum(len(branch) - 1)` tokens, all segments concatenated into
//! `T` tokens (no padding). Attention runs per segment on `[S, L]` slots (`L` = the longest
//! segment): slot `i` of segment `s` is stream token `start(s) + i`; padding slots repeat the
//! segment's first token and are masked out as keys (their query rows are discarded). A prefix
//! token attends the prefix causally; a branch token attends the whole prefix and its own branch
//! causally, never another branch. Position ids restart after the prefix for every branch, so
//! each path `prefix + branch` sees exactly the positions and keys of its own unpadded forward.
//!
//! Cost: the layers see `sum fed(s)` rows instead of `(rows per batch) x (longest request)`;
//! attention sees `S x L x L` scores, small next to the projections for the multiple-choice
//! prompts this serves.

use candle_core::{DType, Device, Result, Tensor};

use super::rope::Positions;
use crate::lm::Branches;

pub struct PackedTree {
    /// The `T` fed tokens, segment after segment.
    pub tokens: Vec<u32>,
    /// Segments (`S`) and slots per segment (`L`).
    pub segments: usize,
    pub width: usize,
    /// `[S * L]` index into the stream: the token at each slot.
    pub gather: Tensor,
    /// `[T]` index into the `S * L` slots: where each stream token sits.
    pub scatter: Tensor,
    /// RoPE angles `[S, 1, L, d]` and attention bias `[S, 1, L, L]` of the slots.
    pub pos: Positions,
    /// `[rows]` index into the stream: the tokens whose logits `branch_logits` returns, in its order.
    pub logit_rows: Tensor,
}

impl PackedTree {
    pub fn new(
        segments: &[Branches<'_>],
        inv_freq: &[f64],
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let s = segments.len();
        let width = segments.iter().map(Branches::fed).max().unwrap_or(0).max(1);
        let total: usize = segments.iter().map(Branches::fed).sum();
        let mut tokens = Vec::with_capacity(total);
        let mut gather = Vec::with_capacity(s * width);
        let mut scatter = Vec::with_capacity(total);
        let mut logit_rows = Vec::new();
        let mut pos = vec![0u64; s * width];
        let mut allowed = vec![false; s * width * width];
        for (si, seg) in segments.iter().enumerate() {
            let lp = seg.prefix.len();
            if lp == 0 {
                candle_core::bail!("branch_logits: segment {si} has an empty prefix");
            }
            let start = tokens.len();
            // owner of each slot: 0 = prefix, i + 1 = branch i
            let mut owner = Vec::with_capacity(seg.fed());
            tokens.extend_from_slice(seg.prefix);
            owner.extend(std::iter::repeat_n(0usize, lp));
            logit_rows.push((start + lp - 1) as u32);
            for (bi, b) in seg.branches.iter().enumerate() {
                let fed = b.len().saturating_sub(1);
                logit_rows.extend((0..fed).map(|j| (tokens.len() + j) as u32));
                tokens.extend_from_slice(&b[..fed]);
                owner.extend(std::iter::repeat_n(bi + 1, fed));
            }
            let n = owner.len();
            let row = si * width;
            let mut branch_start = 0;
            for (i, &o) in owner.iter().enumerate() {
                scatter.push((row + i) as u32);
                if i > 0 && o != owner[i - 1] {
                    branch_start = i;
                }
                // position along the path: prefix index, or lp + index within the branch
                pos[row + i] = if o == 0 { i } else { lp + i - branch_start } as u64;
                let q = (row + i) * width;
                for (k, &ok) in owner.iter().enumerate().take(i + 1) {
                    allowed[q + k] = ok == 0 || ok == o;
                }
            }
            // padding slots repeat the segment's first token: masked as keys, never scattered back
            gather.extend((0..width).map(|i| (start + if i < n { i } else { 0 }) as u32));
        }
        let pos = Positions::explicit(s, width, &pos, &allowed, inv_freq, dtype, device)?;
        let rows = logit_rows.len();
        Ok(Self {
            segments: s,
            width,
            gather: Tensor::from_vec(gather, s * width, device)?,
            scatter: Tensor::from_vec(scatter, total, device)?,
            logit_rows: Tensor::from_vec(logit_rows, rows, device)?,
            pos,
            tokens,
        })
    }
}
