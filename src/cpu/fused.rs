//! Fused CPU kernels with their own backward: RMSNorm and SwiGLU (this file), the masked scaled
//! softmax and RoPE (`fused_attn`).
//!
//! Composed from candle ops, RMSNorm is seven graph nodes and SwiGLU three; each allocates its
//! output, and in the backward pass each gets a zero-filled gradient buffer that the incoming
//! gradient is added into (candle's `GradStore::or_insert`). One fused op per function replaces
//! that with one pass over the data forward and one backward, spread over the rayon pool by rows.
//!
//! Guarantees: f32 and f64 on the CPU only (callers in `ops` fall back to the composed version
//! otherwise); inputs are made contiguous first; each row is computed by one thread in a fixed
//! order, so results do not depend on the number of threads. The frozen operands (norm weight)
//! get no gradient. The f32 exponential is `cpu::fastexp::exp_approx` (relative error < 3e-7).

use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType,
};
use rayon::prelude::*;

/// The float types the fused kernels run in.
pub(crate) trait Real: WithDType {
    fn exp_(self) -> Self;
    fn sqrt_(self) -> Self;
    /// `y = silu(g) * u` element-wise; `avx2`: the CPU has AVX2 and FMA (f32 uses that build).
    fn swiglu_rows(_avx2: bool, y: &mut [Self], g: &[Self], u: &[Self]) {
        swiglu_chunk(y, g, u)
    }
    /// `y = softmax(s * scale + bias)` over one row (f32 uses the AVX2 build when `avx2`).
    fn softmax_row(_avx2: bool, y: &mut [Self], s: &[Self], bias: &[Self], scale: Self) {
        softmax_row_chunk(y, s, bias, scale)
    }
}

impl Real for f32 {
    #[inline(always)]
    fn exp_(self) -> Self {
        super::fastexp::exp_approx(self)
    }
    #[inline(always)]
    fn sqrt_(self) -> Self {
        self.sqrt()
    }
    fn swiglu_rows(avx2: bool, y: &mut [f32], g: &[f32], u: &[f32]) {
        swiglu_f32(avx2, y, g, u)
    }
    fn softmax_row(avx2: bool, y: &mut [f32], s: &[f32], bias: &[f32], scale: f32) {
        softmax_row_f32(avx2, y, s, bias, scale)
    }
}

/// The masked-softmax row in 8 lanes (max and sum), so the f32 build vectorizes `exp_approx`.
#[inline(always)]
pub(super) fn softmax_row_chunk<T: Real>(y: &mut [T], s: &[T], bias: &[T], scale: T) {
    let neg = T::from_f64(f64::NEG_INFINITY);
    let mut lanes = [neg; 8];
    let mut yc = y.chunks_exact_mut(8);
    for ((y, s), b) in (&mut yc).zip(s.chunks_exact(8)).zip(bias.chunks_exact(8)) {
        for l in 0..8 {
            let v = s[l] * scale + b[l];
            y[l] = v;
            lanes[l] = if v > lanes[l] { v } else { lanes[l] };
        }
    }
    let full = y.len() / 8 * 8;
    let mut max = neg;
    for l in lanes {
        max = if l > max { l } else { max };
    }
    for ((y, &s), &b) in y[full..].iter_mut().zip(&s[full..]).zip(&bias[full..]) {
        *y = s * scale + b;
        max = if *y > max { *y } else { max };
    }
    let mut sums = [T::zero(); 8];
    for y in y.chunks_exact_mut(8) {
        for l in 0..8 {
            y[l] = (y[l] - max).exp_();
            sums[l] += y[l];
        }
    }
    let mut sum = T::zero();
    for l in sums {
        sum += l;
    }
    for y in &mut y[full..] {
        *y = (*y - max).exp_();
        sum += *y;
    }
    let inv = T::one() / sum;
    for y in y.iter_mut() {
        *y *= inv;
    }
}

#[inline(always)]
fn softmax_row_chunk_f32(y: &mut [f32], s: &[f32], bias: &[f32], scale: f32) {
    softmax_row_chunk(y, s, bias, scale)
}

super::simd_fn!(flag softmax_row_f32 => softmax_row_chunk_f32(
    y: &mut [f32], s: &[f32], bias: &[f32], scale: f32) -> ());

impl Real for f64 {
    #[inline(always)]
    fn exp_(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn sqrt_(self) -> Self {
        self.sqrt()
    }
}

/// True when the fused kernels can run on `t` (CPU, f32 or f64).
pub fn fusable(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// The contiguous data of a storage, or an error naming the op.
pub(crate) fn data<'a, T: WithDType>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let all = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&all[a..b]),
        None => candle_core::bail!("{op}: operand is not contiguous"),
    }
}

/// Calls `$f::<T>` for the storage's dtype (f32 or f64).
macro_rules! dispatch {
    ($op:expr, $s:expr, $f:ident ( $($arg:expr),* )) => {
        match candle_core::backend::BackendStorage::dtype($s) {
            candle_core::DType::F32 => $f::<f32>($($arg),*),
            candle_core::DType::F64 => $f::<f64>($($arg),*),
            d => candle_core::bail!("{}: dtype {d:?} is not supported", $op),
        }
    };
}
pub(crate) use dispatch;

/// `x / sqrt(mean(x^2) + eps) * w` over the last dimension; `w` is frozen.
struct RmsNorm {
    eps: f64,
}

fn rms_fwd<T: Real>(
    eps: f64,
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let x = data::<T>("rms_norm", s1, l1)?;
    let w = data::<T>("rms_norm", s2, l2)?;
    let n = w.len();
    if n == 0 || l1.dims().last() != Some(&n) {
        candle_core::bail!(
            "rms_norm: input {:?} and weight {:?} disagree",
            l1.dims(),
            l2.dims()
        );
    }
    let (nf, eps) = (T::from_f64(n as f64), T::from_f64(eps));
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .for_each(|(y, x)| {
            let ss = x.iter().fold(T::zero(), |a, &v| a + v * v);
            let inv = T::one() / (ss / nf + eps).sqrt_();
            for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                *y = x * inv * w;
            }
        });
    Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("rms_norm", s1, rms_fwd(self.eps, s1, l1, s2, l2))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = x.apply_op3_no_bwd(w, &g.contiguous()?, &RmsNormBwd { eps: self.eps })?;
        Ok((Some(dx), None))
    }
}

/// `dx = inv (g w) - x inv^3 sum(g w x) / n`, with `inv = 1 / sqrt(mean(x^2) + eps)`.
struct RmsNormBwd {
    eps: f64,
}

fn rms_bwd<T: Real>(
    eps: f64,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    (s3, l3): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, Shape)> {
    let x = data::<T>("rms_norm backward", s1, l1)?;
    let w = data::<T>("rms_norm backward", s2, l2)?;
    let g = data::<T>("rms_norm backward", s3, l3)?;
    let n = w.len();
    if g.len() != x.len() {
        candle_core::bail!(
            "rms_norm backward: gradient {:?} for input {:?}",
            l3.dims(),
            l1.dims()
        );
    }
    let (nf, eps) = (T::from_f64(n as f64), T::from_f64(eps));
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(n)
        .zip(x.par_chunks(n).zip(g.par_chunks(n)))
        .for_each(|(dx, (x, g))| {
            let ss = x.iter().fold(T::zero(), |a, &v| a + v * v);
            let inv = T::one() / (ss / nf + eps).sqrt_();
            let dot = x
                .iter()
                .zip(g)
                .zip(w)
                .fold(T::zero(), |a, ((&x, &g), &w)| a + g * w * x);
            let k = inv * inv * inv * dot / nf;
            for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
                *dx = inv * g * w - x * k;
            }
        });
    Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
}

impl CustomOp3 for RmsNormBwd {
    fn name(&self) -> &'static str {
        "fused-rms-norm-bwd"
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
            "rms_norm backward",
            s1,
            rms_bwd(self.eps, (s1, l1), (s2, l2), (s3, l3))
        )
    }
}

/// Fused RMSNorm (see the module docs); `x` `[..., n]`, frozen `weight` `[n]`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let w = weight.to_dtype(x.dtype())?.contiguous()?;
    x.contiguous()?.apply_op2(&w, RmsNorm { eps })
}

/// `silu(gate) * up`.
struct Swiglu;

#[inline(always)]
fn sigmoid<T: Real>(v: T) -> T {
    T::one() / (T::one() + (T::zero() - v).exp_())
}

fn swiglu_fwd<T: Real>(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let g = data::<T>("swiglu", s1, l1)?;
    let u = data::<T>("swiglu", s2, l2)?;
    if l1.dims() != l2.dims() {
        candle_core::bail!("swiglu: gate {:?} and up {:?} differ", l1.dims(), l2.dims());
    }
    let mut out = vec![T::zero(); g.len()];
    const CHUNK: usize = 4096;
    let avx2 = T::DTYPE == DType::F32 && super::has_avx2();
    out.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(y, (g, u))| {
            T::swiglu_rows(avx2, y, g, u);
        });
    Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
}

#[inline(always)]
pub(crate) fn swiglu_chunk<T: Real>(y: &mut [T], g: &[T], u: &[T]) {
    for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
        *y = g * sigmoid(g) * u;
    }
}

#[inline(always)]
fn swiglu_chunk_f32(y: &mut [f32], g: &[f32], u: &[f32]) {
    swiglu_chunk(y, g, u)
}

// [`swiglu_chunk`] for f32, with an AVX2 build (8 lanes instead of 4; identical results, as Rust
// does not contract multiply-adds).
super::simd_fn!(flag swiglu_f32 => swiglu_chunk_f32(y: &mut [f32], g: &[f32], u: &[f32]) -> ());

impl CustomOp2 for Swiglu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("swiglu", s1, swiglu_fwd(s1, l1, s2, l2))
    }
    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // One pass writes both gradients, stacked on a new leading axis.
        let both = gate.apply_op3_no_bwd(up, &g.contiguous()?, &SwigluBwd)?;
        let d_gate = both.get(0)?;
        let d_up = both.get(1)?;
        Ok((Some(d_gate), Some(d_up)))
    }
}

/// `[d_gate, d_up]` with `d_gate = g u sig(x) (1 + x (1 - sig(x)))`, `d_up = g silu(x)`.
struct SwigluBwd;

fn swiglu_bwd<T: Real>(
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    (s3, l3): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, Shape)> {
    let x = data::<T>("swiglu backward", s1, l1)?;
    let u = data::<T>("swiglu backward", s2, l2)?;
    let g = data::<T>("swiglu backward", s3, l3)?;
    if u.len() != x.len() || g.len() != x.len() {
        candle_core::bail!(
            "swiglu backward: operand sizes {} {} {}",
            x.len(),
            u.len(),
            g.len()
        );
    }
    let n = x.len();
    let mut out = vec![T::zero(); 2 * n];
    let (dg, du) = out.split_at_mut(n);
    const CHUNK: usize = 4096;
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(
            x.par_chunks(CHUNK)
                .zip(u.par_chunks(CHUNK))
                .zip(g.par_chunks(CHUNK)),
        )
        .for_each(|((dg, du), ((x, u), g))| {
            for ((((dg, du), &x), &u), &g) in dg.iter_mut().zip(du.iter_mut()).zip(x).zip(u).zip(g)
            {
                let s = sigmoid(x);
                *dg = g * u * s * (T::one() + x * (T::one() - s));
                *du = g * x * s;
            }
        });
    let mut dims = vec![2];
    dims.extend_from_slice(l1.dims());
    Ok((T::to_cpu_storage_owned(out), Shape::from(dims)))
}

impl CustomOp3 for SwigluBwd {
    fn name(&self) -> &'static str {
        "fused-swiglu-bwd"
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
            "swiglu backward",
            s1,
            swiglu_bwd((s1, l1), (s2, l2), (s3, l3))
        )
    }
}

/// Fused `silu(gate) * up` (see the module docs); `gate` and `up` of the same shape.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, Swiglu)
}
