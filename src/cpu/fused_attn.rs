//! Fused attention kernels with their own backward: the masked, scaled softmax of the scores and
//! the rotary embedding (see `fused` for the shared guarantees: CPU f32/f64, per-row work in a
//! fixed order on the rayon pool, no gradient for constant operands).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::fused::{Real, data, dispatch};

/// `softmax(scale * s + bias)` over the last axis, for scores `s` `[b, h, t, tk]` and a constant
/// additive `bias` `[b, t, tk]` shared by the heads.
struct MaskedSoftmax {
    scale: f64,
}

fn softmax_fwd<T: Real>(
    scale: f64,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, Shape)> {
    let s = data::<T>("masked_softmax", s1, l1)?;
    let bias = data::<T>("masked_softmax", s2, l2)?;
    let (b, h, t, tk) = match l1.dims() {
        [b, h, t, tk] => (*b, *h, *t, *tk),
        d => candle_core::bail!("masked_softmax: scores must be [b, h, t, tk], got {d:?}"),
    };
    if l2.dims() != [b, t, tk] {
        candle_core::bail!(
            "masked_softmax: bias {:?} for scores {:?}",
            l2.dims(),
            l1.dims()
        );
    }
    let scale = T::from_f64(scale);
    let mut out = vec![T::zero(); s.len()];
    if tk == 0 {
        return Ok((T::to_cpu_storage_owned(out), l1.shape().clone()));
    }
    let avx2 = super::has_avx2();
    out.par_chunks_mut(tk)
        .zip(s.par_chunks(tk))
        .enumerate()
        .for_each(|(row, (y, s))| {
            // row = ((bi * h) + hi) * t + ti
            let (bi, ti) = (row / (h * t), row % t);
            let bias = &bias[(bi * t + ti) * tk..][..tk];
            T::softmax_row(avx2, y, s, bias, scale);
        });
    Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "fused-masked-softmax"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(
            "masked_softmax",
            s1,
            softmax_fwd(self.scale, (s1, l1), (s2, l2))
        )
    }
    fn bwd(
        &self,
        _s: &Tensor,
        _bias: &Tensor,
        y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let ds = y.apply_op2_no_bwd(&g.contiguous()?, &SoftmaxBwd { scale: self.scale })?;
        Ok((Some(ds), None))
    }
}

/// `ds = scale * y * (g - sum(g y))` per row.
struct SoftmaxBwd {
    scale: f64,
}

fn softmax_bwd<T: Real>(
    scale: f64,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, Shape)> {
    let y = data::<T>("masked_softmax backward", s1, l1)?;
    let g = data::<T>("masked_softmax backward", s2, l2)?;
    let tk = l1.dims().last().copied().unwrap_or(0);
    if g.len() != y.len() || tk == 0 {
        candle_core::bail!(
            "masked_softmax backward: gradient {:?} for {:?}",
            l2.dims(),
            l1.dims()
        );
    }
    let scale = T::from_f64(scale);
    let mut out = vec![T::zero(); y.len()];
    out.par_chunks_mut(tk)
        .zip(y.par_chunks(tk).zip(g.par_chunks(tk)))
        .for_each(|(d, (y, g))| {
            let dot = y.iter().zip(g).fold(T::zero(), |a, (&y, &g)| a + y * g);
            for ((d, &y), &g) in d.iter_mut().zip(y).zip(g) {
                *d = scale * y * (g - dot);
            }
        });
    Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "fused-masked-softmax-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(
            "masked_softmax backward",
            s1,
            softmax_bwd(self.scale, (s1, l1), (s2, l2))
        )
    }
}

/// Fused `softmax(scale * scores + bias)` (see [`MaskedSoftmax`]): `scores` `[b, h, t, tk]`,
/// constant `bias` `[b, t, tk]`.
pub fn masked_softmax(scores: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    let bias = bias.to_dtype(scores.dtype())?.contiguous()?;
    scores
        .contiguous()?
        .apply_op2(&bias, MaskedSoftmax { scale })
}

/// HF's half-split rotary embedding: `y[j] = x[j] cos[j] + x[(j + d/2) % d] sin_signed[j]` for
/// `x` `[b, h, t, d]` (any strides) and constant `cos`, `sin_signed` `[b, 1, t, d]`. The output is
/// contiguous. With `inverse`, applies the transpose (the backward):
/// `dx[k] = g[k] cos[k] + g[(k + d/2) % d] sin_signed[(k + d/2) % d]`.
struct Rope {
    inverse: bool,
}

fn rope_run<T: Real>(
    inverse: bool,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    (s3, l3): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, Shape)> {
    let (b, h, t, d) = match l1.dims() {
        [b, h, t, d] => (*b, *h, *t, *d),
        dims => candle_core::bail!("rope: input must be [b, h, t, d], got {dims:?}"),
    };
    if l2.dims() != [b, 1, t, d] || l3.dims() != [b, 1, t, d] || d % 2 != 0 {
        candle_core::bail!(
            "rope: cos {:?} / sin {:?} for input {:?}",
            l2.dims(),
            l3.dims(),
            l1.dims()
        );
    }
    let x = s1.as_slice::<T>()?;
    let cos = data::<T>("rope", s2, l2)?;
    let sin = data::<T>("rope", s3, l3)?;
    let st = l1.stride();
    let (s0, s1_, s2_, s3_) = (st[0], st[1], st[2], st[3]);
    let start = l1.start_offset();
    let half = d / 2;
    let mut out = vec![T::zero(); b * h * t * d];
    if out.is_empty() {
        return Ok((T::to_cpu_storage_owned(out), l1.shape().clone()));
    }
    out.par_chunks_mut(t * d)
        .enumerate()
        .for_each(|(plane, y)| {
            let (bi, hi) = (plane / h, plane % h);
            for ti in 0..t {
                let base = start + bi * s0 + hi * s1_ + ti * s2_;
                let cs = &cos[(bi * t + ti) * d..][..d];
                let sn = &sin[(bi * t + ti) * d..][..d];
                let y = &mut y[ti * d..][..d];
                for j in 0..d {
                    let k = if j < half { j + half } else { j - half };
                    let (xj, xk) = (x[base + j * s3_], x[base + k * s3_]);
                    y[j] = if inverse {
                        xj * cs[j] + xk * sn[k]
                    } else {
                        xj * cs[j] + xk * sn[j]
                    };
                }
            }
        });
    Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
    }
    #[allow(clippy::too_many_arguments)]
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(
            "rope",
            s1,
            rope_run(self.inverse, (s1, l1), (s2, l2), (s3, l3))
        )
    }
    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = g.apply_op3_no_bwd(
            cos,
            sin,
            &Rope {
                inverse: !self.inverse,
            },
        )?;
        Ok((Some(dx), None, None))
    }
}

/// Fused rotary embedding (see [`Rope`]); `x` may be a strided view (e.g. a transpose).
pub fn rope(x: &Tensor, cos: &Tensor, sin_signed: &Tensor) -> Result<Tensor> {
    let cos = cos.to_dtype(x.dtype())?.contiguous()?;
    let sin = sin_signed.to_dtype(x.dtype())?.contiguous()?;
    x.apply_op3(&cos, &sin, Rope { inverse: false })
}

/// Keys and values of one layer on the host, `[b, kvh, cap, d]` of which the first `len`
/// positions of every plane are filled (a KV cache with spare capacity).
pub struct KvView<'a> {
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub kvh: usize,
    pub cap: usize,
    pub len: usize,
}

/// `sum(a * b)` in eight lanes (vectorizes), then the lanes in order, then the tail.
#[inline(always)]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len()) / 8 * 8;
    let mut acc = [0f32; 8];
    for (x, y) in a[..n].chunks_exact(8).zip(b[..n].chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in a[n..].iter().zip(&b[n..]) {
        s += x * y;
    }
    s
}

/// One query row: scores into `p`, softmax, then `y = sum_j p_j v_j`.
#[inline(always)]
fn attend_row_generic(
    (q, k, v): (&[f32], &[f32], &[f32]),
    bias: &[f32],
    scale: f32,
    p: &mut Vec<f32>,
    y: &mut [f32],
) {
    let d = q.len();
    let masked = super::MASKED;
    p.clear();
    let mut max = f32::NEG_INFINITY;
    for (kr, &c) in k.chunks_exact(d).zip(bias) {
        let s = if c == masked {
            c
        } else {
            dot8(q, kr) * scale + c
        };
        if s > max {
            max = s;
        }
        p.push(s);
    }
    let mut sum = 0f32;
    for s in p.iter_mut() {
        *s = super::fastexp::exp_approx(*s - max);
        sum += *s;
    }
    let inv = 1.0 / sum;
    y.fill(0.0);
    for (vr, &pj) in v.chunks_exact(d).zip(p.iter()) {
        let w = pj * inv;
        for (y, &x) in y.iter_mut().zip(vr) {
            *y += w * x;
        }
    }
}

super::simd_fn! {
    flag
    /// [`attend_row_generic`], compiled for AVX2 when the CPU has it (same results: Rust does not
    /// contract `a * b + c` into a fused multiply-add).
    pub(crate) attend_row => attend_row_generic(
        qkv: (&[f32], &[f32], &[f32]),
        bias: &[f32],
        scale: f32,
        p: &mut Vec<f32>,
        y: &mut [f32],
    ) -> ()
}

/// Attention of new queries over cached keys and values, for inference with a KV cache: for
/// queries `q` `[b, h, t, d]` (row-major host data) and `kv` (query head `hi` reads KV head
/// `hi / (h / kvh)`), each output row is `softmax(scale q k^T + bias) v`, written straight into
/// `[b, t, h * d]` (the layout `o_proj` reads). `bias` `[b, t, len]` is the additive mask. One
/// rayon task per (row, head), each in a fixed order, so results do not depend on the thread
/// count; the softmax is the one of [`MaskedSoftmax`] (same exponential, same order); a key whose
/// bias is [`MASKED`](super::MASKED) skips its dot product (its score is the bias
/// itself, as `s * scale + MASKED` rounds to `MASKED`). f32 only, and no autograd: the cached
/// path is for inference (loglik scoring, generation), never for training.
pub fn attend_cached(
    q: &[f32],
    (b, h, t, d): (usize, usize, usize, usize),
    kv: &KvView<'_>,
    bias: &[f32],
    scale: f64,
) -> Result<Vec<f32>> {
    let (kvh, cap, tk) = (kv.kvh, kv.cap, kv.len);
    let plane_len = b * kvh * cap * d;
    if d == 0
        || kvh == 0
        || h % kvh != 0
        || tk > cap
        || q.len() != b * h * t * d
        || kv.k.len() != plane_len
        || kv.v.len() != plane_len
        || bias.len() != b * t * tk
    {
        candle_core::bail!(
            "cached attention: q of {} values for [{b}, {h}, {t}, {d}], k/v of {}/{} for \
             [{b}, {kvh}, {cap}, {d}], bias of {} values for {tk} keys",
            q.len(),
            kv.k.len(),
            kv.v.len(),
            bias.len()
        );
    }
    let rep = h / kvh;
    let scale = scale as f32;
    let avx2 = super::has_avx2();
    let mut out = vec![0f32; b * t * h * d];
    out.par_chunks_mut(d).enumerate().for_each_init(
        || Vec::with_capacity(tk),
        |p, (row, y)| {
            // row = (bi * t + ti) * h + hi
            let (bt, hi) = (row / h, row % h);
            let (bi, ti) = (bt / t, bt % t);
            let plane = (bi * kvh + hi / rep) * cap * d;
            let qkv = (
                &q[((bi * h + hi) * t + ti) * d..][..d],
                &kv.k[plane..][..tk * d],
                &kv.v[plane..][..tk * d],
            );
            attend_row(avx2, qkv, &bias[bt * tk..][..tk], scale, p, y);
        },
    );
    Ok(out)
}

/// [`attend_cached`] on tensors: `q` `[b, h, t, d]`, `k`, `v` `[b, kvh, tk, d]` (f32),
/// `bias` `[b, 1, t, tk]`; returns `[b, t, h * d]`.
pub fn cached_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let (_, kvh, tk, _) = k.dims4()?;
    let host = |x: &Tensor| x.flatten_all()?.to_vec1::<f32>();
    let (kh, vh) = (host(k)?, host(v)?);
    let kv = KvView {
        k: &kh,
        v: &vh,
        kvh,
        cap: tk,
        len: tk,
    };
    let y = attend_cached(&host(q)?, (b, h, t, d), &kv, &host(bias)?, scale)?;
    Tensor::from_vec(y, (b, t, h * d), q.device())
}
