//! The frozen-weight matmul: `y = x W^T` whose backward returns the gradient of `x` only.
//!
//! Candle's `matmul` backward always computes the gradient of both operands, even when one is
//! a plain (non-`Var`) tensor that nobody will ever read; for a frozen base weight that is a
//! full `[out, in]` matmul and a weight-sized allocation per layer per step. [`frozen_linear`]
//! runs the same forward kernel through a [`CustomOp2`] whose backward returns only
//! `dL/dx = dL/dy W`, and never a gradient for `W`.
//!
//! Guarantees: the forward is bit-identical to `x.matmul(&w.t())` (same backend kernel, same
//! layouts); the input gradient equals plain matmul's; `W` never appears in the gradient store.
//! `W` must be a frozen tensor: if it were a `Var` its gradient would silently be dropped.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// `x [m, k]` times `w [n, k]` transposed; `w` gets no gradient.
struct FrozenMatmul;

/// Checks the operand shapes and returns `(m, n, k)` and the transposed layout of `w`.
fn plan(l1: &Layout, l2: &Layout) -> Result<((usize, usize, usize), Layout)> {
    let (m, k) = match l1.dims() {
        [m, k] => (*m, *k),
        d => candle_core::bail!("frozen_linear: input must be 2-D, got {d:?}"),
    };
    let (n, k2) = match l2.dims() {
        [n, k2] => (*n, *k2),
        d => candle_core::bail!("frozen_linear: weight must be 2-D, got {d:?}"),
    };
    if k != k2 {
        candle_core::bail!(
            "frozen_linear: input has {k} features, weight [{n}, {k2}] expects {k2}"
        );
    }
    Ok(((m, n, k), l2.transpose(0, 1)?))
}

fn forward<S: BackendStorage>(s1: &S, l1: &Layout, s2: &S, l2: &Layout) -> Result<(S, Shape)> {
    if s1.dtype() != s2.dtype() {
        candle_core::bail!(
            "frozen_linear: input dtype {:?} differs from weight dtype {:?}",
            s1.dtype(),
            s2.dtype()
        );
    }
    let ((m, n, k), wt) = plan(l1, l2)?;
    let out = s1.matmul(s2, (1, m, n, k), l1, &wt)?;
    Ok((out, Shape::from((m, n))))
}

impl CustomOp2 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        forward(s1, l1, s2, l2)
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        forward(s1, l1, s2, l2)
    }

    fn bwd(
        &self,
        _x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // dL/dx = dL/dy [m, n] @ W [n, k]; no gradient for the frozen weight.
        Ok((Some(grad.matmul(w)?), None))
    }
}

/// `x W^T` for `x` of shape `[..., in]` and a frozen `w` of shape `[out, in]`; returns `[..., out]`.
/// Leading dimensions are flattened into one matmul.
pub fn frozen_linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    let Some((&features, lead)) = dims.split_last() else {
        candle_core::bail!("frozen_linear: input is a scalar");
    };
    let rows: usize = lead.iter().product();
    let out = w.dim(0)?;
    let x2 = x.reshape((rows, features))?;
    let y = x2.apply_op2(w, FrozenMatmul)?;
    let mut shape = lead.to_vec();
    shape.push(out);
    y.reshape(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        crate::adapter::init::uniform_tensor(shape, 1.0, seed, DType::F32, &Device::Cpu).unwrap()
    }

    // Reference: candle's own `x.matmul(&w.t())` and its autograd, on the same operands.
    #[test]
    fn forward_and_input_gradient_equal_plain_matmul() {
        let x = Var::from_tensor(&rand(&[6, 8], 1)).unwrap();
        let w = rand(&[5, 8], 2);
        let wt = w.t().unwrap();
        let g = rand(&[6, 5], 3);

        let ours = frozen_linear(x.as_tensor(), &w).unwrap();
        let plain = x.as_tensor().matmul(&wt).unwrap();
        let diff = (&ours - &plain).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);

        let gx_ours = (ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gx_plain = (plain * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let a = gx_ours.get(x.as_tensor()).unwrap();
        let b = gx_plain.get(x.as_tensor()).unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        // Plain matmul computes (and stores) a gradient for its frozen operand; the custom op does not.
        assert!(gx_plain.get(&wt).is_some());
        assert!(gx_ours.get(&w).is_none() && gx_ours.get(&wt).is_none());
    }

    #[test]
    fn leading_dimensions_are_flattened_and_restored() {
        let x = rand(&[2, 3, 8], 4);
        let w = rand(&[5, 8], 2);
        let y = frozen_linear(&x, &w).unwrap();
        assert_eq!(y.dims(), [2, 3, 5]);
        let plain = x.broadcast_matmul(&w.t().unwrap()).unwrap();
        let diff = (&y - &plain).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn mismatched_features_is_an_error() {
        let x = rand(&[4, 7], 1);
        let w = rand(&[5, 8], 2);
        let err = frozen_linear(&x, &w).unwrap_err().to_string();
        assert!(err.contains("7 features"), "{err}");
    }
}
