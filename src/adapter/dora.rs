//! DoRA with PEFT's semantics (`peft/tuners/lora/dora.py`, `DoraLinearLayer`):
//!
//! - magnitude `m` (`[out]`, trainable) starts as the row norms of `W + s B A` (= `||W||_row`
//!   when `B = 0`);
//! - `n = ||W + s B A||_row` is DETACHED (no gradient flows through the norm, as in the paper's
//!   section 4.3 and PEFT);
//! - `y = W x + b + (m/n - 1) * (W x~) + (m/n) * s * B A x~` with `x~ = dropout(x)`; without
//!   active dropout `W x~` is the base output minus the bias (no second base matmul);
//! - merge `W' = (m/n)[:, None] * (W + s B A)`.
//!
//! The norm is computed without forming `W + s B A`:
//! `n^2 = ||W||^2_row + 2 s rowsum(B * (W A^T)) + s^2 rowsum((B (A A^T)) * B)`, with `||W||^2_row`
//! cached per base weight (keyed by tensor id). That is an `[out, r]` computation instead of an
//! `[out, in]` one per step.

use std::sync::Mutex;

use candle_core::{Result, Tensor, TensorId, Var};

use super::frozen::frozen_linear;
use super::linear::{FusedParts, LinearAdapter};
use super::lowrank::LowRank;
use super::spec::AdapterSpec;

pub struct Dora {
    low: LowRank,
    magnitude: Var,
    /// `||W||^2` per row for the weight with this id.
    base_sq: Mutex<Option<(TensorId, Tensor)>>,
    /// `m / n` at merge time, needed to unmerge.
    merged_ratio: Mutex<Option<Tensor>>,
}

impl Dora {
    /// A fresh DoRA adapter: `m = ||W + s B A||_row`.
    pub fn init(low: LowRank, weight: &Tensor) -> Result<Self> {
        let d = Self::new_unchecked(
            low,
            Tensor::zeros(weight.dim(0)?, weight.dtype(), weight.device())?,
        )?;
        let m = d.weight_norm(weight)?;
        Ok(Self {
            magnitude: Var::from_tensor(&m)?,
            ..d
        })
    }

    /// From a saved magnitude vector (`[out]`).
    pub fn new(low: LowRank, magnitude: &Tensor, out_features: usize) -> Result<Self> {
        if magnitude.dims() != [out_features] {
            candle_core::bail!(
                "lora_magnitude_vector has shape {:?}, expected [{out_features}]",
                magnitude.dims()
            );
        }
        Self::new_unchecked(low, magnitude.clone())
    }

    fn new_unchecked(low: LowRank, magnitude: Tensor) -> Result<Self> {
        let magnitude = Var::from_tensor(&magnitude.to_dtype(low.dtype())?)?;
        Ok(Self {
            low,
            magnitude,
            base_sq: Mutex::new(None),
            merged_ratio: Mutex::new(None),
        })
    }

    pub fn low_rank(&self) -> &LowRank {
        &self.low
    }

    pub fn magnitude(&self) -> &Var {
        &self.magnitude
    }

    fn base_row_sq(&self, weight: &Tensor) -> Result<Tensor> {
        let mut cache = self.base_sq.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, sq)) = cache.as_ref()
            && *id == weight.id()
        {
            return Ok(sq.clone());
        }
        let sq = weight.detach().to_dtype(self.low.dtype())?.sqr()?.sum(1)?;
        *cache = Some((weight.id(), sq.clone()));
        Ok(sq)
    }

    /// `||W + s B A||_row` (`[out]`, adapter dtype), detached.
    pub fn weight_norm(&self, weight: &Tensor) -> Result<Tensor> {
        let s = self.low.scale();
        let a = self.low.a().as_tensor().detach();
        let b = self.low.b().as_tensor().detach();
        // W A^T in the base dtype (no f32 copy of a bf16 weight per step), accumulated in f32
        // by the matmul kernels; the cross term is small next to ||W||^2.
        let w = weight.detach();
        let wa = w
            .matmul(&a.t()?.to_dtype(w.dtype())?)?
            .to_dtype(a.dtype())?; // [out, r]
        let cross = (&b * wa)?.sum(1)?.affine(2.0 * s, 0.0)?;
        let aat = a.matmul(&a.t()?)?; // [r, r]
        let quad = (b.matmul(&aat)? * &b)?.sum(1)?.affine(s * s, 0.0)?;
        let sq = ((self.base_row_sq(weight)? + cross)? + quad)?;
        sq.relu()?.sqrt()
    }

    /// The forward pass with the norm `n` given (it is a constant of the graph either way; tests
    /// use this to finite-difference `A` and `B` with `n` held fixed).
    pub fn forward_with_norm(
        &self,
        x: &Tensor,
        base: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        norm: &Tensor,
    ) -> Result<Tensor> {
        let dtype = self.low.dtype();
        let x_tilde = self.low.input(x)?;
        let ratio = self.magnitude.as_tensor().div(norm)?; // [out]
        let base_f = base.to_dtype(dtype)?;
        let wx = if self.low.dropout().is_active() {
            frozen_linear(&x_tilde.to_dtype(weight.dtype())?, weight)?.to_dtype(dtype)?
        } else {
            match bias {
                Some(b) => base_f.broadcast_sub(&b.to_dtype(dtype)?)?,
                None => base_f.clone(),
            }
        };
        let lora = self.low.delta(&x_tilde)?;
        let y = (base_f + wx.broadcast_mul(&(&ratio - 1.0)?)?)?;
        (y + lora.broadcast_mul(&ratio)?)?.to_dtype(base.dtype())
    }
}

impl LinearAdapter for Dora {
    fn forward(
        &self,
        x: &Tensor,
        base: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let norm = self.weight_norm(weight)?;
        self.forward_with_norm(x, base, weight, bias, &norm)
    }

    fn fused_parts(&self) -> Option<FusedParts> {
        self.low.fused_parts(Some(self.magnitude.clone()))
    }

    fn spec(&self) -> AdapterSpec {
        self.low.spec()
    }

    fn vars(&self) -> Vec<(&'static str, Var)> {
        vec![
            ("lora_A.weight", self.low.a().clone()),
            ("lora_B.weight", self.low.b().clone()),
            ("lora_magnitude_vector", self.magnitude.clone()),
        ]
    }

    fn set_training(&self, training: bool) {
        self.low.dropout().set_training(training);
    }

    fn set_dropout_stream(&self, stream: u64) {
        self.low.dropout().set_stream(stream);
    }

    fn merged_weight(&self, weight: &Tensor) -> Result<Tensor> {
        let ratio = self
            .magnitude
            .as_tensor()
            .detach()
            .div(&self.weight_norm(weight)?)?;
        let w = (weight.to_dtype(self.low.dtype())? + self.low.delta_weight()?)?;
        let merged = w.broadcast_mul(&ratio.unsqueeze(1)?)?;
        *self.merged_ratio.lock().unwrap_or_else(|e| e.into_inner()) = Some(ratio);
        merged.to_dtype(weight.dtype())
    }

    fn unmerged_weight(&self, merged: &Tensor) -> Result<Tensor> {
        let ratio = self
            .merged_ratio
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(ratio) = ratio else {
            candle_core::bail!("DoRA unmerge without a previous merge");
        };
        let w = merged
            .to_dtype(self.low.dtype())?
            .broadcast_div(&ratio.unsqueeze(1)?)?;
        (w - self.low.delta_weight()?)?.to_dtype(merged.dtype())
    }
}
