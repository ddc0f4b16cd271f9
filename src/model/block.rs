//! One decoder layer: pre-norm attention and a SwiGLU MLP, each with a residual connection.

use candle_core::{Module, Result, Tensor};

use super::attention::{Attention, LayerKv};
use super::ops::{self, LayerPath, LayerPathLog};
use super::packed::PackedTree;
use super::rope::Positions;
use crate::adapter::linear::Linear;

pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = ops::swiglu(&self.gate_proj.forward(x)?, &self.up_proj.forward(x)?)?;
        self.down_proj.forward(&h)
    }
}

pub struct Block {
    /// `[hidden]`.
    pub input_layernorm: Tensor,
    pub self_attn: Attention,
    /// `[hidden]`.
    pub post_attention_layernorm: Tensor,
    pub mlp: Mlp,
}

impl Block {
    /// The layer's forward. Without a KV cache (training) the layer runs as one fused op where it
    /// can (`ops::block_op`, unless `path` says composed), and `log` records which path it took.
    pub fn forward(
        &self,
        x: &Tensor,
        pos: &Positions,
        eps: f64,
        kv: Option<&mut LayerKv>,
        path: LayerPath,
        log: &LayerPathLog,
    ) -> Result<Tensor> {
        if kv.is_none() {
            match ops::block_forward(self, x, pos, eps, path) {
                Ok(y) => {
                    log.record(Ok(()));
                    return y;
                }
                Err(why) => log.record(Err(why)),
            }
        }
        let h = ops::rms_norm(x, &self.input_layernorm, eps)?;
        let x = (x + self.self_attn.forward(&h, pos, kv)?)?;
        let h = ops::rms_norm(&x, &self.post_attention_layernorm, eps)?;
        x + self.mlp.forward(&h)?
    }

    /// The layer on a packed prefix-branch stream `x` `[1, T, hidden]` (inference).
    pub fn forward_packed(&self, x: &Tensor, pk: &PackedTree, eps: f64) -> Result<Tensor> {
        let h = ops::rms_norm(x, &self.input_layernorm, eps)?;
        let x = (x + self.self_attn.forward_packed(&h, pk)?)?;
        let h = ops::rms_norm(&x, &self.post_attention_layernorm, eps)?;
        x + self.mlp.forward(&h)?
    }
}
