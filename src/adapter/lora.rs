//! LoRA: `y = W x (+ b) + s * B (A dropout(x))`, merged as `W' = W + s B A`.
//!
//! The scale `s` comes from the spec's [`super::scaling::ScalingRule`] (alpha/r, alpha/sqrt(r) or
//! fixed) and multiplies only the low-rank delta, never the base output.

use candle_core::{Result, Tensor, Var};

use super::fused_lora::{self, lora_linear};
use super::linear::{FusedParts, LinearAdapter};
use super::lowrank::LowRank;
use super::spec::AdapterSpec;

#[derive(Debug)]
pub struct Lora {
    low: LowRank,
}

impl Lora {
    pub fn new(low: LowRank) -> Self {
        Self { low }
    }

    pub fn low_rank(&self) -> &LowRank {
        &self.low
    }
}

impl LinearAdapter for Lora {
    fn forward(
        &self,
        x: &Tensor,
        base: &Tensor,
        _weight: &Tensor,
        _bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let delta = self.low.delta(&self.low.input(x)?)?;
        base + delta.to_dtype(base.dtype())?
    }

    fn forward_fused(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
    ) -> Option<Result<Tensor>> {
        let b = self.low.b().as_tensor();
        if bias.is_some() || x.dtype() != self.low.dtype() || !fused_lora::applicable(x, weight, b)
        {
            return None;
        }
        let run = || lora_linear(x, weight, &self.low.hidden(&self.low.input(x)?)?, b);
        Some(run())
    }

    fn fused_parts(&self) -> Option<FusedParts> {
        self.low.fused_parts(None)
    }

    fn spec(&self) -> AdapterSpec {
        self.low.spec()
    }

    fn vars(&self) -> Vec<(&'static str, Var)> {
        vec![
            ("lora_A.weight", self.low.a().clone()),
            ("lora_B.weight", self.low.b().clone()),
        ]
    }

    fn set_training(&self, training: bool) {
        self.low.dropout().set_training(training);
    }

    fn set_dropout_stream(&self, stream: u64) {
        self.low.dropout().set_stream(stream);
    }

    fn merged_weight(&self, weight: &Tensor) -> Result<Tensor> {
        let w = weight.to_dtype(self.low.dtype())?;
        (w + self.low.delta_weight()?)?.to_dtype(weight.dtype())
    }

    fn unmerged_weight(&self, merged: &Tensor) -> Result<Tensor> {
        let w = merged.to_dtype(self.low.dtype())?;
        (w - self.low.delta_weight()?)?.to_dtype(merged.dtype())
    }
}
