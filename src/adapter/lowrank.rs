//! The low-rank pair `(A, B)` shared by LoRA and DoRA: `s * B (A x~)` with `x~ = dropout(x)`.
//!
//! `A` is `[r, in]`, `B` is `[out, r]` (PEFT's `lora_A.weight` / `lora_B.weight` shapes). Both are
//! `Var`s in the adapter dtype (f32, or f64 when the base is f64), whatever the base dtype; inputs
//! are cast to that dtype before the adapter path and results are cast back by the caller.

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, Var};

use super::dropout::Dropout;
use super::init::{LoraInit, derive_seed, init_a};
use super::linear::FusedParts;
use super::spec::AdapterSpec;

/// The dtype adapter parameters use for a base of dtype `base`.
pub fn adapter_dtype(base: DType) -> DType {
    match base {
        DType::F64 => DType::F64,
        _ => DType::F32,
    }
}

#[derive(Debug)]
pub struct LowRank {
    a: Var,
    b: Var,
    spec: AdapterSpec,
    dropout: Arc<Dropout>,
}

impl LowRank {
    /// From explicit matrices (loading, tests). Checks `a: [r, in]`, `b: [out, r]`, `r = spec.rank`.
    pub fn new(spec: AdapterSpec, a: &Tensor, b: &Tensor, dropout: Dropout) -> Result<Self> {
        let (ra, _) = a.dims2()?;
        let (_, rb) = b.dims2()?;
        if ra != spec.rank || rb != spec.rank {
            candle_core::bail!(
                "lora_A {:?} / lora_B {:?} do not have rank {}",
                a.dims(),
                b.dims(),
                spec.rank
            );
        }
        if a.dtype() != b.dtype() {
            candle_core::bail!("lora_A is {:?} but lora_B is {:?}", a.dtype(), b.dtype());
        }
        Ok(Self {
            a: Var::from_tensor(a)?,
            b: Var::from_tensor(b)?,
            spec,
            dropout: Arc::new(dropout),
        })
    }

    /// A fresh pair for a module of shape `(out, in)`: `A` from `init`, `B = 0`, seeded by
    /// `(seed, module)`.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        spec: AdapterSpec,
        (out, inp): (usize, usize),
        init: LoraInit,
        dropout_p: f64,
        seed: u64,
        module: &str,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let a = init_a(
            init,
            spec.rank,
            inp,
            derive_seed(seed, module, "lora_A"),
            dtype,
            device,
        )?;
        let b = Tensor::zeros((out, spec.rank), dtype, device)?;
        let dropout = Dropout::new(dropout_p, derive_seed(seed, module, "dropout"));
        Self::new(spec, &a, &b, dropout)
    }

    pub fn a(&self) -> &Var {
        &self.a
    }

    pub fn b(&self) -> &Var {
        &self.b
    }

    pub fn spec(&self) -> AdapterSpec {
        self.spec
    }

    pub fn scale(&self) -> f64 {
        self.spec.scale()
    }

    pub fn dtype(&self) -> DType {
        self.a.dtype()
    }

    pub fn dropout(&self) -> &Dropout {
        &self.dropout
    }

    /// `x~ = dropout(x)` in the adapter dtype.
    pub fn input(&self, x: &Tensor) -> Result<Tensor> {
        self.dropout.apply(&x.to_dtype(self.dtype())?)
    }

    /// `s * B (A x~)` for `x~` of shape `[..., in]` (adapter dtype); returns `[..., out]`.
    pub fn delta(&self, x_tilde: &Tensor) -> Result<Tensor> {
        let Some((_, lead)) = x_tilde.dims().split_last() else {
            candle_core::bail!("adapter input is a scalar");
        };
        // the scale is applied to the rank-r activations, r/out as much work as scaling the output
        let y = self.hidden(x_tilde)?.matmul(&self.b.as_tensor().t()?)?;
        let mut shape = lead.to_vec();
        shape.push(y.dim(1)?);
        y.reshape(shape)
    }

    /// `s * A x~` as a `[rows, r]` matrix (rows = product of the leading dims of `x~`).
    pub fn hidden(&self, x_tilde: &Tensor) -> Result<Tensor> {
        let features = x_tilde.dim(candle_core::D::Minus1)?;
        let rows = x_tilde.elem_count() / features.max(1);
        x_tilde
            .reshape((rows, features))?
            .matmul(&self.a.as_tensor().t()?)?
            .affine(self.scale(), 0.0)
    }

    /// The fused-kernel view of this pair (see [`FusedParts`]): only while training. With a
    /// dropout probability above 0 the kernel draws this pair's masks itself
    /// ([`FusedParts::dropout`]); DoRA (`magnitude`) then keeps the composed path.
    pub fn fused_parts(&self, magnitude: Option<Var>) -> Option<FusedParts> {
        if !self.dropout.is_training() || (magnitude.is_some() && self.dropout.p() > 0.0) {
            return None;
        }
        Some(FusedParts {
            a: self.a.clone(),
            b: self.b.clone(),
            scale: self.scale(),
            magnitude,
            dropout: (self.dropout.p() > 0.0).then(|| self.dropout.clone()),
        })
    }

    /// `s * B A` (`[out, in]`, adapter dtype), detached from the graph.
    pub fn delta_weight(&self) -> Result<Tensor> {
        self.b
            .as_tensor()
            .detach()
            .matmul(&self.a.as_tensor().detach())?
            .affine(self.scale(), 0.0)
    }
}
