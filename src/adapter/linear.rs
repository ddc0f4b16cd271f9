//! The linear layer every adaptable projection of the model is built from.
//!
//! The model owns its projections as [`Linear`]s and exposes them (with their HF module paths)
//! so `adapter` can attach LoRA/DoRA to any subset. The frozen weight is a plain `Tensor`
//! (never a `Var`); only adapter parameters are trainable. The base weight is shared, never
//! copied per adapter.

use candle_core::{Module, Result, Tensor};

/// Something that adds a learned correction to a frozen linear layer (LoRA, DoRA).
/// Implemented in this module's siblings.
pub trait LinearAdapter: Send + Sync {
    /// Output of the adapted layer given the input `x` and the frozen base output `base = W x (+ b)`.
    fn forward(&self, x: &Tensor, base: &Tensor, weight: &Tensor) -> Result<Tensor>;
}

/// A frozen linear layer `y = x W^T (+ b)` with an optional adapter.
pub struct Linear {
    /// `[out, in]`, frozen.
    weight: Tensor,
    bias: Option<Tensor>,
    adapter: Option<Box<dyn LinearAdapter>>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            adapter: None,
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

    /// Replace the frozen weight (merge/unmerge, pruning).
    pub fn set_weight(&mut self, weight: Tensor) {
        self.weight = weight;
    }

    pub fn adapter(&self) -> Option<&dyn LinearAdapter> {
        self.adapter.as_deref()
    }

    pub fn set_adapter(
        &mut self,
        adapter: Option<Box<dyn LinearAdapter>>,
    ) -> Option<Box<dyn LinearAdapter>> {
        std::mem::replace(&mut self.adapter, adapter)
    }

    /// The frozen path only: `x W^T (+ b)` for `x` of shape `[..., in]`.
    pub fn forward_base(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.weight.t()?;
        let y = match x.dims() {
            [b, t, i] => x.reshape((b * t, *i))?.matmul(&w)?.reshape((*b, *t, ()))?,
            _ => x.broadcast_matmul(&w)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let base = self.forward_base(x)?;
        match &self.adapter {
            Some(a) => a.forward(x, &base, &self.weight),
            None => Ok(base),
        }
    }
}
