//! Bottleneck adapters: the Series (Houlsby) and Parallel adapters of LLM-Adapters
//! (`AGI-Edgerunners/LLM-Adapters`, `peft/src/peft/tuners/bottleneck.py`, commit 8166572).
//!
//! `A(z) = up(act(down(dropout(z))))` with `down: [b, d_in]`, `up: [d_out, b]` (no biases) and a
//! scale `s` (a number, or a learned scalar starting at it). Where the adapter sits depends on the
//! method and the module, as LLM-Adapters decides it for LLaMA
//! (`TRANSFORMERS_MODELS_TO_ADAPTER_TYPE_MAPPING`, `bottleneck.py` `Linear.forward`):
//!
//! | placement | LLM-Adapters | modules | output |
//! |---|---|---|---|
//! | [`Placement::Before`] | `mh_adapter` | series on `gate_proj`, `up_proj` | `W (x + s A(x)) + b` |
//! | [`Placement::After`] | `output_adapter` | series on `down_proj` | `h + s A(h)`, `h = W x + b` |
//! | [`Placement::Parallel`] | `parallel_adapter` | parallel on any projection | `W x + b + s A(x)` |
//!
//! The scale multiplies only the adapter's output; dropout touches only its input. A bottleneck
//! is not linear in `x`, so it cannot be merged into `W`: the model is evaluated unmerged.
//!
//! Initialisation (`bottleneck.py` `reset_adapter_parameters`): `bert` (LLM-Adapters' default)
//! draws both matrices from N(0, 0.02^2), so a fresh adapter already changes the output; `mam`
//! draws `down` kaiming-uniform (`U(-1/sqrt(d_in), 1/sqrt(d_in))`) and sets `up = 0`, so a fresh
//! adapter is the identity.

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::dropout::Dropout;
use super::frozen::frozen_linear;
use super::init::{LoraInit, derive_seed, normal_tensor, uniform_tensor};
use super::linear::LinearAdapter;
use super::scaling::ScalingRule;
use super::spec::{AdapterSpec, Method};

/// Where a bottleneck adapter sits relative to its module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the module's input, inside its own skip connection: `W (x + s A(x))`.
    Before,
    /// On the module's output, inside its own skip connection: `h + s A(h)`.
    After,
    /// Beside the module: `W x + s A(x)`.
    Parallel,
}

impl Placement {
    /// The placement of `method` on the projection named `proj` (the last path component), or
    /// `None` where LLM-Adapters defines none (a series adapter on an attention projection).
    pub fn of(method: Method, proj: &str) -> Option<Placement> {
        let name = proj.rsplit('.').next().unwrap_or(proj);
        match method {
            Method::Parallel => Some(Placement::Parallel),
            Method::Series => match name {
                "gate_proj" | "up_proj" => Some(Placement::Before),
                "down_proj" => Some(Placement::After),
                _ => None,
            },
            Method::Lora | Method::Dora | Method::Prefix => None,
        }
    }

    /// `(d_in, d_out)` of the adapter on a module of shape `(out, in)`.
    pub fn widths(self, (out, inp): (usize, usize)) -> (usize, usize) {
        match self {
            Placement::Before => (inp, inp),
            Placement::After => (out, out),
            Placement::Parallel => (inp, out),
        }
    }
}

/// The non-linearity between `down` and `up` (transformers' `ACT2FN` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Tanh,
    Relu,
    Silu,
    /// Exact (erf) GELU, `ACT2FN["gelu"]`.
    Gelu,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::Silu => "silu",
            Activation::Gelu => "gelu",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        [
            Activation::Tanh,
            Activation::Relu,
            Activation::Silu,
            Activation::Gelu,
        ]
        .into_iter()
        .find(|a| a.name() == s)
    }

    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.relu(),
            Activation::Silu => x.silu(),
            Activation::Gelu => x.gelu_erf(),
        }
    }
}

/// The scale of the adapter output.
#[derive(Debug)]
enum Scale {
    Fixed(f64),
    /// A trainable `[1]` scalar (LLM-Adapters' `adapter_scaling` parameter).
    Learned(Var),
}

/// A bottleneck adapter on one module.
#[derive(Debug)]
pub struct Bottleneck {
    /// `[b, d_in]`.
    down: Var,
    /// `[d_out, b]`.
    up: Var,
    scale: Scale,
    placement: Placement,
    activation: Activation,
    spec: AdapterSpec,
    dropout: Arc<Dropout>,
}

impl Bottleneck {
    /// From explicit matrices (loading, tests). Checks the shapes against the placement on a
    /// module of shape `(out, in)`; `learned` is the saved `[1]` scale of a learned rule.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: AdapterSpec,
        placement: Placement,
        activation: Activation,
        shape: (usize, usize),
        down: &Tensor,
        up: &Tensor,
        learned: Option<&Tensor>,
        dropout: Dropout,
    ) -> Result<Self> {
        let (d_in, d_out) = placement.widths(shape);
        let b = spec.rank;
        if down.dims() != [b, d_in] || up.dims() != [d_out, b] {
            candle_core::bail!(
                "adapter_down {:?} / adapter_up {:?}, expected [{b}, {d_in}] / [{d_out}, {b}]",
                down.dims(),
                up.dims()
            );
        }
        let scale = match (spec.rule, learned) {
            (ScalingRule::Learned(_), Some(s)) if s.dims() == [1] => {
                Scale::Learned(Var::from_tensor(&s.to_dtype(down.dtype())?)?)
            }
            (ScalingRule::Learned(_), Some(s)) => {
                candle_core::bail!("adapter_scaling has shape {:?}, expected [1]", s.dims())
            }
            (ScalingRule::Learned(s0), None) => Scale::Learned(Var::from_tensor(
                &Tensor::full(s0, 1, down.device())?.to_dtype(down.dtype())?,
            )?),
            (ScalingRule::Fixed(s), None) => Scale::Fixed(s),
            (ScalingRule::Fixed(_), Some(_)) => {
                candle_core::bail!("adapter_scaling is saved but the scaling is a fixed number")
            }
            (rule, _) => {
                candle_core::bail!("a bottleneck adapter cannot scale by rule {}", rule.name())
            }
        };
        Ok(Self {
            down: Var::from_tensor(down)?,
            up: Var::from_tensor(&up.to_dtype(down.dtype())?)?,
            scale,
            placement,
            activation,
            spec,
            dropout: Arc::new(dropout),
        })
    }

    /// A fresh adapter on the module `module` of shape `(out, in)`, seeded by `(seed, module)`.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        spec: AdapterSpec,
        placement: Placement,
        activation: Activation,
        shape: (usize, usize),
        init: LoraInit,
        dropout_p: f64,
        seed: u64,
        module: &str,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let (d_in, d_out) = placement.widths(shape);
        let b = spec.rank;
        let down_seed = derive_seed(seed, module, "adapter_down");
        let up_seed = derive_seed(seed, module, "adapter_up");
        let (down, up) = match init {
            LoraInit::Mam => (
                uniform_tensor(
                    &[b, d_in],
                    1.0 / (d_in as f64).sqrt(),
                    down_seed,
                    dtype,
                    device,
                )?,
                Tensor::zeros((d_out, b), dtype, device)?,
            ),
            LoraInit::Bert => (
                normal_tensor(&[b, d_in], 0.02, down_seed, dtype, device)?,
                normal_tensor(&[d_out, b], 0.02, up_seed, dtype, device)?,
            ),
            other => candle_core::bail!("a bottleneck adapter cannot use the {other:?} init"),
        };
        let dropout = Dropout::new(dropout_p, derive_seed(seed, module, "dropout"));
        Self::new(
            spec, placement, activation, shape, &down, &up, None, dropout,
        )
    }

    pub fn placement(&self) -> Placement {
        self.placement
    }

    pub fn activation(&self) -> Activation {
        self.activation
    }

    pub fn down(&self) -> &Var {
        &self.down
    }

    pub fn up(&self) -> &Var {
        &self.up
    }

    /// `s A(z)` for `z` of shape `[..., d_in]`, in `z`'s dtype.
    pub fn adapt(&self, z: &Tensor) -> Result<Tensor> {
        let dtype = self.down.dtype();
        let Some((&features, lead)) = z.dims().split_last() else {
            candle_core::bail!("adapter input is a scalar");
        };
        let rows = z.elem_count() / features.max(1);
        let zt = self
            .dropout
            .apply(&z.to_dtype(dtype)?)?
            .reshape((rows, features))?;
        let h = self
            .activation
            .apply(&zt.matmul(&self.down.as_tensor().t()?)?)?;
        let y = h.matmul(&self.up.as_tensor().t()?)?;
        let y = match &self.scale {
            Scale::Fixed(s) => y.affine(*s, 0.0)?,
            Scale::Learned(s) => y.broadcast_mul(s.as_tensor())?,
        };
        let mut shape = lead.to_vec();
        shape.push(y.dim(1)?);
        y.reshape(shape)?.to_dtype(z.dtype())
    }
}

impl LinearAdapter for Bottleneck {
    fn forward(
        &self,
        x: &Tensor,
        base: &Tensor,
        weight: &Tensor,
        _bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        match self.placement {
            // W (x + s A(x)) + b = (W x + b) + W (s A(x))
            Placement::Before => {
                base + frozen_linear(&self.adapt(x)?.to_dtype(weight.dtype())?, weight)?
                    .to_dtype(base.dtype())?
            }
            Placement::After => base + self.adapt(base)?,
            Placement::Parallel => base + self.adapt(x)?.to_dtype(base.dtype())?,
        }
    }

    fn spec(&self) -> AdapterSpec {
        self.spec
    }

    fn mergeable(&self) -> bool {
        false
    }

    fn vars(&self) -> Vec<(&'static str, Var)> {
        let mut v = vec![
            ("adapter_down.weight", self.down.clone()),
            ("adapter_up.weight", self.up.clone()),
        ];
        if let Scale::Learned(s) = &self.scale {
            v.push(("adapter_scaling", s.clone()));
        }
        v
    }

    fn set_training(&self, training: bool) {
        self.dropout.set_training(training);
    }

    fn set_dropout_stream(&self, stream: u64) {
        self.dropout.set_stream(stream);
    }

    fn merged_weight(&self, _weight: &Tensor) -> Result<Tensor> {
        candle_core::bail!(
            "a {} adapter cannot be merged into the weight: evaluate it unmerged",
            self.spec.method.name()
        )
    }

    fn unmerged_weight(&self, _merged: &Tensor) -> Result<Tensor> {
        candle_core::bail!("a {} adapter is never merged", self.spec.method.name())
    }
}
