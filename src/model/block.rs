//! One decoder layer: pre-norm attention and a SwiGLU MLP, each with a residual connection.

use candle_core::{Module, Result, Tensor};

use super::attention::{Attention, LayerKv};
use std::sync::atomic::{AtomicU8, Ordering};

use super::ops::{self, LayerPath, LayerPathLog, Unfused};
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
    /// The training path this layer chose at its first training forward since the last
    /// [`Block::reset_path`]: 0 undecided, 1 fused, `2 + Unfused::code` composed for that reason.
    pub path: AtomicU8,
}

const UNDECIDED: u8 = 0;
const FUSED: u8 = 1;

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
            // A layer decides once: a static reason not to fuse (the asked path, a bias, an
            // adapter without a fused form, ...) holds for the rest of the run.
            // (a test's reference path is per call, not a choice of the run: never remembered)
            let decided = if ops::reference_path_active() {
                2 + Unfused::Asked.code()
            } else {
                self.path.load(Ordering::Relaxed)
            };
            match decided.checked_sub(2).and_then(Unfused::from_code) {
                Some(why) => log.record(Err(why)),
                None => match ops::block_forward(self, x, pos, eps, path) {
                    Ok(y) => {
                        if decided == UNDECIDED {
                            self.path.store(FUSED, Ordering::Relaxed);
                        }
                        log.record(Ok(()));
                        return y;
                    }
                    Err(why) => {
                        if decided == UNDECIDED && why.is_static() {
                            self.path.store(2 + why.code(), Ordering::Relaxed);
                        }
                        log.record(Err(why));
                    }
                },
            }
        }
        let h = ops::rms_norm(x, &self.input_layernorm, eps)?;
        let x = (x + self.self_attn.forward(&h, pos, kv)?)?;
        let h = ops::rms_norm(&x, &self.post_attention_layernorm, eps)?;
        x + self.mlp.forward(&h)?
    }

    /// Forget the chosen training path (adapters or the asked path changed).
    pub fn reset_path(&self) {
        self.path.store(UNDECIDED, Ordering::Relaxed);
    }

    /// The layer on a packed prefix-branch stream `x` `[1, T, hidden]` (inference).
    pub fn forward_packed(&self, x: &Tensor, pk: &PackedTree, eps: f64) -> Result<Tensor> {
        let h = ops::rms_norm(x, &self.input_layernorm, eps)?;
        let x = (x + self.self_attn.forward_packed(&h, pk)?)?;
        let h = ops::rms_norm(&x, &self.post_attention_layernorm, eps)?;
        x + self.mlp.forward(&h)?
    }
}
