//! The LoRA layer as one graph node: `y = x W^T + h B^T` with `h = s A x~` (rank r).
//!
//! Composed, a LoRA layer is a frozen matmul, the delta matmul and an add. The add costs a full
//! `[rows, out]` pass forward, and backward candle gives each of its two operands a zero-filled
//! gradient buffer plus an add pass. [`lora_linear`] computes both products with the backend's
//! matmul kernel and adds them in place; its backward returns `dx = g W`, `dh = g B`,
//! `dB = g^T h` and nothing for the frozen `W`.
//!
//! Guarantees: the forward is bit-identical to `frozen_linear(x, W) + h.matmul(B^T)` (same kernels,
//! same order of the final add); gradients equal the composed ones (test). CPU only, `x`, `h`,
//! `B` and `W` all f32 or all f64; [`applicable`] says when (otherwise the caller composes).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

/// `x [m, k] W^T + h [m, r] B^T`, `W [n, k]` frozen, `B [n, r]`.
struct LoraLinear {
    w: Tensor,
}

/// Whether [`lora_linear`] runs for these operands.
pub fn applicable(x: &Tensor, w: &Tensor, b: &Tensor) -> bool {
    x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && w.dtype() == x.dtype()
        && b.dtype() == x.dtype()
        && w.device().is_cpu()
}

fn dims2(what: &str, l: &Layout) -> Result<(usize, usize)> {
    match l.dims() {
        [a, b] => Ok((*a, *b)),
        d => candle_core::bail!("lora_linear: {what} must be 2-D, got {d:?}"),
    }
}

fn add_into<T: candle_core::WithDType>(y: &mut [T], d: &[T]) {
    const CHUNK: usize = 1 << 14;
    y.par_chunks_mut(CHUNK)
        .zip(d.par_chunks(CHUNK))
        .for_each(|(y, d)| y.iter_mut().zip(d).for_each(|(y, &d)| *y += d));
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "lora-linear"
    }

    #[allow(clippy::too_many_arguments)]
    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        h: &CpuStorage,
        lh: &Layout,
        b: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = dims2("input", lx)?;
        let (mh, r) = dims2("rank-r activations", lh)?;
        let (n, rb) = dims2("lora_B", lb)?;
        let (guard, lw) = self.w.storage_and_layout();
        let Storage::Cpu(w) = &*guard else {
            candle_core::bail!("lora_linear: the weight is not on the CPU");
        };
        let (nw, kw) = dims2("weight", lw)?;
        if kw != k || nw != n || mh != m || rb != r {
            candle_core::bail!(
                "lora_linear: x {:?}, W {:?}, h {:?}, B {:?} do not fit",
                lx.dims(),
                lw.dims(),
                lh.dims(),
                lb.dims()
            );
        }
        let base = x.matmul(w, (1, m, n, k), lx, &lw.transpose(0, 1)?)?;
        let delta = h.matmul(b, (1, m, n, r), lh, &lb.transpose(0, 1)?)?;
        let out = match (base, delta) {
            (CpuStorage::F32(mut y), CpuStorage::F32(d)) => {
                add_into(&mut y, &d);
                CpuStorage::F32(y)
            }
            (CpuStorage::F64(mut y), CpuStorage::F64(d)) => {
                add_into(&mut y, &d);
                CpuStorage::F64(y)
            }
            (y, _) => candle_core::bail!("lora_linear: dtype {:?} is not supported", y.dtype()),
        };
        Ok((out, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        h: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = g.matmul(&self.w)?;
        let dh = g.matmul(b)?;
        let db = g.t()?.matmul(h)?;
        Ok((Some(dx), Some(dh), Some(db)))
    }
}

/// `x W^T + h B^T` for `x` `[..., in]`, rank-r activations `h` `[rows, r]` (rows = product of
/// `x`'s leading dims), `B` `[out, r]` and a frozen `W` `[out, in]`; returns `[..., out]`.
pub fn lora_linear(x: &Tensor, w: &Tensor, h: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    let Some((&features, lead)) = dims.split_last() else {
        candle_core::bail!("lora_linear: input is a scalar");
    };
    let rows: usize = lead.iter().product();
    let y = x
        .reshape((rows, features))?
        .apply_op3(h, b, LoraLinear { w: w.clone() })?;
    let mut shape = lead.to_vec();
    shape.push(w.dim(0)?);
    y.reshape(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::frozen::frozen_linear;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        crate::adapter::init::uniform_tensor(shape, 1.0, seed, DType::F32, &Device::Cpu).unwrap()
    }

    // Reference: the composed layer, `frozen_linear(x, W) + h.matmul(B^T)`, and candle's autograd.
    #[test]
    fn forward_is_bit_identical_and_gradients_match_the_composed_layer() {
        let x = Var::from_tensor(&rand(&[2, 3, 8], 1)).unwrap();
        let w = rand(&[5, 8], 2);
        let h = Var::from_tensor(&rand(&[6, 4], 3)).unwrap();
        let b = Var::from_tensor(&rand(&[5, 4], 4)).unwrap();
        let g = rand(&[2, 3, 5], 5);
        let ours = lora_linear(x.as_tensor(), &w, h.as_tensor(), b.as_tensor()).unwrap();
        let delta = h.as_tensor().matmul(&b.as_tensor().t().unwrap()).unwrap();
        let plain = (frozen_linear(x.as_tensor(), &w).unwrap() + delta.reshape((2, 3, 5)).unwrap())
            .unwrap();
        let diff = (&ours - &plain).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);

        let ga = (ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (plain * &g).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [
            ("x", x.as_tensor()),
            ("h", h.as_tensor()),
            ("B", b.as_tensor()),
        ] {
            let (a, c) = (ga.get(v).unwrap(), gb.get(v).unwrap());
            let d = (a - c)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let s = c
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                s > 1e-3 && d < 1e-5 * s,
                "{name}: gradient differs by {d} (scale {s})"
            );
        }
        assert!(ga.get(&w).is_none());
    }
}
