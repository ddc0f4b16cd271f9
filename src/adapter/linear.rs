//! The linear layer every adaptable projection of the model is built from.
//!
//! The model owns its projections as [`Linear`]s and exposes them (with their HF module paths)
//! so `adapter` can attach LoRA/DoRA to any subset. The frozen weight is a plain `Tensor`
//! (never a `Var`); only adapter parameters are trainable. The base weight is shared, never
//! copied per adapter, and the base matmul computes no gradient for it ([`frozen_linear`]).
//!
//! Merge state: after [`Linear::merge`] the weight holds `W'` (the adapter folded in) and the
//! forward pass skips the adapter; [`Linear::unmerge`] restores `W` (up to rounding).

use candle_core::{Module, Result, Tensor, Var};

use super::frozen::frozen_linear;
use super::spec::AdapterSpec;

/// Something that adds a learned correction to a frozen linear layer (LoRA, DoRA).
/// Implemented by [`super::lora::Lora`] and [`super::dora::Dora`].
pub trait LinearAdapter: Send + Sync {
    /// Output of the adapted layer given the input `x`, the frozen base output
    /// `base = W x (+ b)`, and the frozen weight and bias.
    fn forward(
        &self,
        x: &Tensor,
        base: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor>;
    /// The adapted output computed in one go (no separate base output), when the adapter has a
    /// fused path for these operands; `None` means the caller uses [`LinearAdapter::forward`].
    /// Must equal `forward(x, x W^T + b, ..)`.
    fn forward_fused(
        &self,
        _x: &Tensor,
        _weight: &Tensor,
        _bias: Option<&Tensor>,
    ) -> Option<Result<Tensor>> {
        None
    }
    /// The parts a fused training kernel needs (`crate::model::ops` fused decoder layer), when
    /// this adapter is training (LoRA with any dropout, DoRA without); `None` means such kernels
    /// must not run (the caller uses [`LinearAdapter::forward`]).
    fn fused_parts(&self) -> Option<FusedParts> {
        None
    }
    /// Method, rank, alpha and scaling rule of this adapter.
    fn spec(&self) -> AdapterSpec;
    /// Whether [`LinearAdapter::merged_weight`] exists (false for bottleneck adapters).
    fn mergeable(&self) -> bool {
        true
    }
    /// The trainable variables with their PEFT suffixes (`lora_A.weight`, `lora_B.weight`,
    /// `lora_magnitude_vector`), in that order.
    fn vars(&self) -> Vec<(&'static str, Var)>;
    /// Dropout on (training) or off (evaluation).
    fn set_training(&self, training: bool);
    /// Select the dropout random stream (see `adapter::dropout`).
    fn set_dropout_stream(&self, stream: u64);
    /// The weight with this adapter folded in, given the frozen `weight`.
    fn merged_weight(&self, weight: &Tensor) -> Result<Tensor>;
    /// The frozen weight recovered from a weight produced by [`LinearAdapter::merged_weight`].
    fn unmerged_weight(&self, merged: &Tensor) -> Result<Tensor>;
}

/// An adapter as `y = ratio * (x W^T + scale * (x A^T) B^T)`: LoRA (`magnitude` `None`, ratio 1)
/// or DoRA (`ratio = magnitude / ||W + scale B A||_row`, the norm detached).
pub struct FusedParts {
    /// `[r, in]`.
    pub a: Var,
    /// `[out, r]`.
    pub b: Var,
    pub scale: f64,
    /// DoRA's `[out]` magnitude vector.
    pub magnitude: Option<Var>,
    /// LoRA with dropout: the kernel applies `x~ = dropout(x)` on the adapter branch, drawing
    /// one mask per forward with [`crate::adapter::dropout::Dropout::draw`] (the masks the composed path would use).
    pub dropout: Option<std::sync::Arc<crate::adapter::dropout::Dropout>>,
}

/// A frozen linear layer `y = x W^T (+ b)` with an optional adapter.
pub struct Linear {
    /// `[out, in]`, frozen.
    weight: Tensor,
    bias: Option<Tensor>,
    adapter: Option<Box<dyn LinearAdapter>>,
    /// True while `weight` holds the adapter folded in.
    merged: bool,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            adapter: None,
            merged: false,
        }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `(out, in)`.
    pub fn shape(&self) -> (usize, usize) {
        let d = self.weight.dims();
        (d[0], d[1])
    }

    /// Replace the frozen weight (pruning, loading).
    pub fn set_weight(&mut self, weight: Tensor) {
        self.weight = weight;
    }

    pub fn adapter(&self) -> Option<&dyn LinearAdapter> {
        self.adapter.as_deref()
    }

    /// Install (or remove, with `None`) the adapter, returning the previous one. A merged adapter
    /// is unmerged first so the weight is the frozen base again.
    pub fn set_adapter(
        &mut self,
        adapter: Option<Box<dyn LinearAdapter>>,
    ) -> Result<Option<Box<dyn LinearAdapter>>> {
        self.unmerge()?;
        Ok(std::mem::replace(&mut self.adapter, adapter))
    }

    pub fn is_merged(&self) -> bool {
        self.merged
    }

    /// Fold the adapter into the weight. Returns false when there is nothing to merge; an error
    /// for an adapter that cannot be merged (the layer is left as it was).
    pub fn merge(&mut self) -> Result<bool> {
        match &self.adapter {
            Some(a) if !self.merged => {
                if !a.mergeable() {
                    candle_core::bail!(
                        "a {} adapter cannot be merged into the weight: evaluate it unmerged",
                        a.spec().method.name()
                    );
                }
                self.weight = a.merged_weight(&self.weight)?;
                self.merged = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Undo [`Linear::merge`]. Returns false when the layer was not merged.
    pub fn unmerge(&mut self) -> Result<bool> {
        match &self.adapter {
            Some(a) if self.merged => {
                self.weight = a.unmerged_weight(&self.weight)?;
                self.merged = false;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Fold the adapter in for good and drop it: the layer becomes a plain linear with `W'`.
    pub fn merge_and_unload(&mut self) -> Result<Option<Box<dyn LinearAdapter>>> {
        self.merge()?;
        self.merged = false;
        Ok(self.adapter.take())
    }

    /// The frozen path only: `x W^T (+ b)` for `x` of shape `[..., in]`.
    pub fn forward_base(&self, x: &Tensor) -> Result<Tensor> {
        let y = frozen_linear(x, &self.weight)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.adapter {
            Some(a) if !self.merged => {
                if let Some(y) = a.forward_fused(x, &self.weight, self.bias.as_ref()) {
                    return y;
                }
                let base = self.forward_base(x)?;
                a.forward(x, &base, &self.weight, self.bias.as_ref())
            }
            _ => self.forward_base(x),
        }
    }
}
