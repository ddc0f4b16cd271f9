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
    out.par_chunks_mut(tk)
        .zip(s.par_chunks(tk))
        .enumerate()
        .for_each(|(row, (y, s))| {
            // row = ((bi * h) + hi) * t + ti
            let (bi, ti) = (row / (h * t), row % t);
            let bias = &bias[(bi * t + ti) * tk..][..tk];
            let mut max = T::from_f64(f64::NEG_INFINITY);
            for ((y, &s), &c) in y.iter_mut().zip(s).zip(bias) {
                *y = s * scale + c;
                if *y > max {
                    max = *y;
                }
            }
            let mut sum = T::zero();
            for y in y.iter_mut() {
                *y = (*y - max).exp_();
                sum += *y;
            }
            let inv = T::one() / sum;
            for y in y.iter_mut() {
                *y *= inv;
            }
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
