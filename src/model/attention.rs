//! Grouped-query self-attention with rotary embeddings and an optional key/value cache.
//!
//! GQA without copying keys: the `rep = n_heads / n_kv_heads` query heads that share a KV head
//! are stacked along the time axis (`[b, kv, rep * t, d]`), so one batched matmul per KV head
//! serves all of them. Scores and softmax are computed in f32 (f64 for f64 weights) whatever the weight dtype.
//!
//! With a KV cache on the CPU in f32 (inference: loglik scoring, generation), the cache is a pair
//! of host buffers with spare capacity ([`HostKv`]: appending a step copies only the new
//! positions, no concatenation of the whole cache) and attention runs as one fused kernel over
//! them (`ops::attend_cached`) for decode steps (few new positions), equal to the tensor path up
//! to float rounding; steps with many new positions copy the cache into tensors and use the
//! matmul path. The host cache has no autograd (inference only). Elsewhere (CUDA, half precision) the cache holds candle tensors.

use candle_core::{DType, Module, Result, Tensor};

use super::ops;
use super::packed::PackedTree;
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

/// Steps with at most this many new positions use the fused kernel over the host cache; longer
/// ones (prefill, loglik continuations) copy the cache into tensors and use batched matmuls,
/// which are faster there (measured on SmolLM2: the kernel's dot products do not match gemm
/// once there are ~100 queries per row).
const FUSED_MAX_NEW: usize = 4;

/// Keys and values of one layer, after RoPE.
#[derive(Clone, Default)]
pub enum LayerKv {
    #[default]
    Empty,
    /// `[b, kv, t, d]` tensors.
    Tensors(Tensor, Tensor),
    /// Host buffers (CPU, f32).
    Host(HostKv),
}

impl LayerKv {
    /// A slot that starts with `k`, `v` `[b, kvh, n, d]` (a prefix): host buffers when `host` and
    /// they are CPU f32 (inference; detached), else the tensors themselves (they keep their graph).
    pub fn prefilled(k: Tensor, v: Tensor, host: bool) -> Result<Self> {
        let (b, kvh, n, d) = k.dims4()?;
        if host && k.dtype() == DType::F32 && k.device().is_cpu() {
            let mut h = HostKv::new(b, kvh, d);
            let flat = |x: &Tensor| x.detach().flatten_all()?.to_vec1::<f32>();
            h.append(&flat(&k)?, &flat(&v)?, n)?;
            return Ok(LayerKv::Host(h));
        }
        Ok(LayerKv::Tensors(k, v))
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        match self {
            LayerKv::Empty => 0,
            LayerKv::Tensors(k, _) => k.dims().get(2).copied().unwrap_or(0),
            LayerKv::Host(h) => h.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Afterwards row `i` holds what row `rows[i]` held (indices checked by the caller).
    pub fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        match self {
            LayerKv::Empty => {}
            LayerKv::Tensors(k, v) => {
                let idx = Tensor::new(rows, k.device())?;
                *k = k.index_select(&idx, 0)?;
                *v = v.index_select(&idx, 0)?;
            }
            LayerKv::Host(h) => *h = h.reordered(rows)?,
        }
        Ok(())
    }
}

/// A host KV cache: keys and values `[b, kvh, cap, d]`, the first `len` positions of each
/// `[cap, d]` plane filled. Capacity doubles when a step does not fit.
#[derive(Clone)]
pub struct HostKv {
    b: usize,
    kvh: usize,
    d: usize,
    cap: usize,
    len: usize,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl HostKv {
    fn new(b: usize, kvh: usize, d: usize) -> Self {
        Self {
            b,
            kvh,
            d,
            cap: 0,
            len: 0,
            k: Vec::new(),
            v: Vec::new(),
        }
    }

    /// A copy of the filled part of every plane into buffers of capacity `cap`, for rows `rows`.
    fn copied(&self, rows: &[u32], cap: usize) -> Result<Self> {
        let (kvh, d, len) = (self.kvh, self.d, self.len);
        let mut k = vec![0f32; rows.len() * kvh * cap * d];
        let mut v = vec![0f32; rows.len() * kvh * cap * d];
        for (i, &r) in rows.iter().enumerate() {
            let r = r as usize;
            if r >= self.b {
                candle_core::bail!("kv cache: row {r} of a cache with {} rows", self.b);
            }
            for hi in 0..kvh {
                let (src, dst) = ((r * kvh + hi) * self.cap * d, (i * kvh + hi) * cap * d);
                k[dst..dst + len * d].copy_from_slice(&self.k[src..src + len * d]);
                v[dst..dst + len * d].copy_from_slice(&self.v[src..src + len * d]);
            }
        }
        Ok(Self {
            b: rows.len(),
            kvh,
            d,
            cap,
            len,
            k,
            v,
        })
    }

    /// The filled part as contiguous `[b, kvh, len, d]` tensors.
    fn tensors(&self, device: &candle_core::Device) -> Result<(Tensor, Tensor)> {
        let (n, d, len) = (self.b * self.kvh, self.d, self.len);
        let mut k = Vec::with_capacity(n * len * d);
        let mut v = Vec::with_capacity(n * len * d);
        for plane in 0..n {
            let at = plane * self.cap * d;
            k.extend_from_slice(&self.k[at..at + len * d]);
            v.extend_from_slice(&self.v[at..at + len * d]);
        }
        let shape = (self.b, self.kvh, len, d);
        Ok((
            Tensor::from_vec(k, shape, device)?,
            Tensor::from_vec(v, shape, device)?,
        ))
    }

    fn reordered(&self, rows: &[u32]) -> Result<Self> {
        self.copied(rows, self.cap)
    }

    /// Append `t` new positions, `k` and `v` `[b, kvh, t, d]` row-major.
    fn append(&mut self, k: &[f32], v: &[f32], t: usize) -> Result<()> {
        let (kvh, d) = (self.kvh, self.d);
        if k.len() != self.b * kvh * t * d || v.len() != k.len() {
            candle_core::bail!(
                "kv cache: {} new keys / {} values for [{}, {kvh}, {t}, {d}]",
                k.len(),
                v.len(),
                self.b
            );
        }
        if self.len + t > self.cap {
            let rows: Vec<u32> = (0..self.b as u32).collect();
            *self = self.copied(&rows, (2 * (self.len + t)).max(64))?;
        }
        for plane in 0..self.b * kvh {
            let dst = (plane * self.cap + self.len) * d;
            let src = plane * t * d;
            self.k[dst..dst + t * d].copy_from_slice(&k[src..src + t * d]);
            self.v[dst..dst + t * d].copy_from_slice(&v[src..src + t * d]);
        }
        self.len += t;
        Ok(())
    }
}

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
        let scale = 1.0 / (d as f64).sqrt();
        let (k, v) = match kv {
            Some(slot)
                if q.dtype() == DType::F32
                    && q.device().is_cpu()
                    && matches!(slot, LayerKv::Empty | LayerKv::Host(_)) =>
            {
                if matches!(slot, LayerKv::Empty) {
                    *slot = LayerKv::Host(HostKv::new(b, kvh, d));
                }
                let LayerKv::Host(cache) = slot else {
                    candle_core::bail!("kv cache: host buffers expected"); // invariant: set above
                };
                if cache.b != b || cache.kvh != kvh || cache.d != d {
                    candle_core::bail!(
                        "kv cache holds [{}, {}, _, {}], the layer gives [{b}, {kvh}, _, {d}]",
                        cache.b,
                        cache.kvh,
                        cache.d
                    );
                }
                let host = |x: &Tensor| x.flatten_all()?.to_vec1::<f32>();
                cache.append(&host(&k)?, &host(&v)?, t)?;
                if t > FUSED_MAX_NEW {
                    // many new queries (prefill, loglik continuations): the matmul path is faster
                    cache.tensors(x.device())?
                } else {
                    let view = ops::KvView {
                        k: &cache.k,
                        v: &cache.v,
                        kvh,
                        cap: cache.cap,
                        len: cache.len,
                    };
                    let y = ops::attend_cached(
                        &host(&q)?,
                        (b, h, t, d),
                        &view,
                        &host(&pos.bias)?,
                        scale,
                    )?;
                    let y = Tensor::from_vec(y, (b, t, h * d), x.device())?;
                    return self.o_proj.forward(&y);
                }
            }
            Some(slot) => {
                let (k, v) = match std::mem::take(slot) {
                    LayerKv::Tensors(ck, cv) => {
                        (Tensor::cat(&[&ck, &k], 2)?, Tensor::cat(&[&cv, &v], 2)?)
                    }
                    LayerKv::Empty => (k, v),
                    LayerKv::Host(_) => {
                        candle_core::bail!("kv cache: host buffers for a non-f32 or GPU layer")
                    }
                };
                *slot = LayerKv::Tensors(k.clone(), v.clone());
                (k, v)
            }
            None => (k, v),
        };
        let y = self.attend(&q, &k, &v, &pos.bias, b, t)?;
        self.o_proj.forward(&y)
    }

    /// Packed prefix-branch layout (`x` `[1, T, hidden]`, see [`PackedTree`]): projections on the
    /// `T` stream rows, attention on the per-segment slots.
    pub fn forward_packed(&self, x: &Tensor, pk: &PackedTree) -> Result<Tensor> {
        let (h, kvh, d) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let (s, l) = (pk.segments, pk.width);
        let t = x.dim(1)?;
        let slots = |y: Tensor, heads: usize| {
            y.squeeze(0)?
                .index_select(&pk.gather, 0)?
                .reshape((s, l, heads, d))?
                .transpose(1, 2)
        };
        let q = slots(self.q_proj.forward(x)?, h)?;
        let k = slots(self.k_proj.forward(x)?, kvh)?;
        let v = slots(self.v_proj.forward(x)?, kvh)?.contiguous()?;
        let q = ops::rope(&q, &pk.pos.cos, &pk.pos.sin_signed)?;
        let k = ops::rope(&k, &pk.pos.cos, &pk.pos.sin_signed)?;
        let y = self
            .attend(&q, &k, &v, &pk.pos.bias, s, l)?
            .reshape((s * l, h * d))?
            .index_select(&pk.scatter, 0)?
            .reshape((1, t, h * d))?;
        self.o_proj.forward(&y)
    }

    /// Attention of roped `q` `[b, h, t, d]` over `k`, `v` `[b, kvh, tk, d]` with the additive
    /// `bias` `[b, 1, t, tk]`: `[b, t, h * d]`, before the output projection.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: &Tensor,
        b: usize,
        t: usize,
    ) -> Result<Tensor> {
        let (h, kvh, d) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let scale = 1.0 / (d as f64).sqrt();
        let tk = k.dim(2)?;
        let rep = h / kvh;
        let dtype = q.dtype();
        // Fused path (CPU f32/f64): the scale and the mask are applied inside the softmax op.
        let fused = ops::fusable(q);
        let q = ops::upcast(q)?;
        let q = if fused { q } else { (q * scale)? }.reshape((b, kvh, rep * t, d))?;
        let scores = q.matmul(&ops::upcast(k)?.t()?)?;
        let probs = if fused {
            let bias = bias.reshape((b, t, tk))?;
            ops::masked_softmax(&scores.reshape((b, h, t, tk))?, &bias, scale)?
        } else {
            let scores = scores.reshape((b, kvh, rep, t, tk))?;
            let bias = bias.reshape((b, 1, 1, t, tk))?.to_dtype(scores.dtype())?;
            ops::softmax_last_dim(&scores.broadcast_add(&bias)?)?
        };
        let probs = probs.reshape((b, kvh, rep * t, tk))?.to_dtype(dtype)?;
        probs
            .matmul(v)?
            .reshape((b, h, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, h * d))
    }
}
