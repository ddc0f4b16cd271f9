//! Differentiable building blocks of the forward pass.
//!
//! candle_nn's fused `rms_norm`, `softmax_last_dim` and `rope` have no backward pass (DESIGN.md):
//! gradients silently stop there. On the CPU in f32/f64, RMSNorm, SwiGLU, RoPE and the attention
//! softmax run as our own fused ops with a backward (`crate::cpu::fused`, `crate::cpu::fused_attn`); elsewhere (bf16, CUDA)
//! they are composed from candle ops that do have one. `tests` checks that gradients reach the
//! inputs through each of them (f64, finite differences).

use candle_core::{D, DType, Result, Tensor};

mod block_op;
#[cfg(test)]
mod block_tests;
#[cfg(test)]
mod tests;

pub use crate::cpu::fused::fusable;
pub use crate::cpu::fused_attn::{KvView, attend_cached, cached_attention, masked_softmax};
use crate::cpu::{fused, fused_attn};
pub use block_op::{
    LayerPath, LayerPathLog, LayerPathReport, Unfused, block_forward, reference_path_active,
    with_reference_path,
};

/// RMSNorm over the last dimension: `x / sqrt(mean(x^2) + eps) * weight`, computed in at least f32
/// and returned in `x`'s dtype.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if fusable(x) {
        return fused::rms_norm(x, weight, eps);
    }
    let dtype = x.dtype();
    let x = upcast(x)?;
    let inv = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    let y = x.broadcast_mul(&inv)?.to_dtype(dtype)?;
    y.broadcast_mul(weight)
}

/// Half-precision tensors widened to f32 for reductions; f32/f64 unchanged.
pub fn upcast(x: &Tensor) -> Result<Tensor> {
    match x.dtype() {
        DType::BF16 | DType::F16 => x.to_dtype(DType::F32),
        _ => Ok(x.clone()),
    }
}

/// Softmax over the last dimension (`x - max` for stability; the max is a constant shift, so it
/// is detached).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&s)
}

/// `silu(gate) * up` (SwiGLU).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if fusable(gate) && gate.dtype() == up.dtype() && gate.dims() == up.dims() {
        return fused::swiglu(gate, up);
    }
    gate.silu()?.mul(up)
}

/// Rotary embedding in HF's half-split layout (`rotate_half`): for `x` `[b, h, t, d]` and
/// `cos`, `sin_signed` `[b, 1, t, d]` where `cos = [c, c]` and `sin_signed = [-s, s]`,
/// returns `x * cos + [x2, x1] * sin_signed`.
pub fn rope(x: &Tensor, cos: &Tensor, sin_signed: &Tensor) -> Result<Tensor> {
    if let [b, _, t, d] = *x.dims()
        && fusable(x)
        && cos.dims() == [b, 1, t, d]
        && sin_signed.dims() == [b, 1, t, d]
    {
        return fused_attn::rope(x, cos, sin_signed);
    }
    let d = x.dim(D::Minus1)?;
    let half = d / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let swapped = Tensor::cat(&[&x2, &x1], D::Minus1)?;
    x.broadcast_mul(cos)? + swapped.broadcast_mul(sin_signed)?
}
