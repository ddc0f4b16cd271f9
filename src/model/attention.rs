//! Grouped-query self-attention with rotary embeddings and an optional key/value cache.
//!
//! GQA without copying keys: the `rep = n_heads / n_kv_heads` query heads that share a KV head
//! are stacked along the time axis (`[b, kv, rep * t, d]`), so one batched matmul per KV head
//! serves all of them. Scores and softmax are computed in f32 (f64 for f64 weights) whatever the weight dtype.

use candle_core::{Module, Result, Tensor};

use super::ops;
use super::rope::Positions;
use crate::adapter::linear::Linear;

pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// Keys and values of one layer, `[b, kv, t, d]`, after RoPE.
pub type LayerKv = Option<(Tensor, Tensor)>;

impl Attention {
    /// `x` `[b, t, hidden]` -> `[b, t, hidden]`. With `kv`, the new keys/values are appended to
    /// the cached ones and attention covers both.
    pub fn forward(&self, x: &Tensor, pos: &Positions, kv: Option<&mut LayerKv>) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, kvh, d) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let split = |y: Tensor, heads: usize| y.reshape((b, t, heads, d))?.transpose(1, 2);
        let q = split(self.q_proj.forward(x)?, h)?;
        let k = split(self.k_proj.forward(x)?, kvh)?;
        let v = split(self.v_proj.forward(x)?, kvh)?.contiguous()?;
        let q = ops::rope(&q, &pos.cos, &pos.sin_signed)?;
        let k = ops::rope(&k, &pos.cos, &pos.sin_signed)?;
        let (k, v) = match kv {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((ck, cv)) => (Tensor::cat(&[&ck, &k], 2)?, Tensor::cat(&[&cv, &v], 2)?),
                    None => (k, v),
                };
                *slot = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        let tk = k.dim(2)?;
        let rep = h / kvh;
        let dtype = q.dtype();
        let scale = 1.0 / (d as f64).sqrt();
        // Fused path (CPU f32/f64): the scale and the mask are applied inside the softmax op.
        let fused = ops::fusable(&q);
        let q = ops::upcast(&q)?;
        let q = if fused { q } else { (q * scale)? }.reshape((b, kvh, rep * t, d))?;
        let scores = q.matmul(&ops::upcast(&k)?.t()?)?;
        let probs = if fused {
            let bias = pos.bias.reshape((b, t, tk))?;
            ops::masked_softmax(&scores.reshape((b, h, t, tk))?, &bias, scale)?
        } else {
            let scores = scores.reshape((b, kvh, rep, t, tk))?;
            let bias = pos
                .bias
                .reshape((b, 1, 1, t, tk))?
                .to_dtype(scores.dtype())?;
            ops::softmax_last_dim(&scores.broadcast_add(&bias)?)?
        };
        let probs = probs.reshape((b, kvh, rep * t, tk))?.to_dtype(dtype)?;
        let y = probs
            .matmul(&v)?
            .reshape((b, h, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, h * d))?;
        self.o_proj.forward(&y)
    }
}
