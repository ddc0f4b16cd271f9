//! The runtime configuration of a LLaMA-family model, independent of the file format it came from.
//!
//! Loaders (HF `config.json`, GGUF metadata, random presets) produce a [`LlamaConfig`]; the model
//! is built from it. Per-layer dimensions are explicit so structurally pruned checkpoints (heads,
//! KV heads and FFN width that differ layer by layer) are first-class.

use serde::{Deserialize, Serialize};

/// LLaMA-3 style RoPE frequency scaling (`rope_scaling.rope_type = "llama3"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Llama3RopeScaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

/// The dimensions of one decoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDims {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (GQA: `n_heads % n_kv_heads == 0`).
    pub n_kv_heads: usize,
    /// FFN (gate/up) width.
    pub intermediate_size: usize,
}

/// The shape of a model whose decoder layers all have the same dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniformShape {
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    /// Width of one attention head (the same in every layer; pruning removes whole heads).
    pub head_dim: usize,
    /// One entry per decoder layer.
    pub layers: Vec<LayerDims>,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3RopeScaling>,
    pub max_position_embeddings: usize,
    /// `lm_head` shares the embedding matrix.
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

impl LlamaConfig {
    /// The one constructor of configs not read from a file (random models, named shapes, bench
    /// presets, check-time shapes): `shape` with `head_dim = hidden / heads`, RMSNorm eps 1e-5,
    /// RoPE theta 1e4 without scaling, 2048 positions, untied embeddings and no special token
    /// ids. Callers change what differs with struct update syntax.
    pub fn uniform(shape: UniformShape) -> LlamaConfig {
        LlamaConfig {
            vocab_size: shape.vocab,
            hidden_size: shape.hidden,
            head_dim: shape.hidden / shape.heads.max(1),
            layers: vec![
                LayerDims {
                    n_heads: shape.heads,
                    n_kv_heads: shape.kv_heads,
                    intermediate_size: shape.ffn,
                };
                shape.layers
            ],
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            max_position_embeddings: 2048,
            tie_word_embeddings: false,
            bos_token_id: None,
            eos_token_ids: vec![],
        }
    }

    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// True when every layer has the same dimensions (an unpruned or uniformly shrunk model).
    pub fn is_uniform(&self) -> bool {
        self.layers.windows(2).all(|w| w[0] == w[1])
    }

    /// `(out, in)` of a projection in layer `layer`, by its HF short name
    /// (`q_proj k_proj v_proj o_proj gate_proj up_proj down_proj`).
    pub fn proj_shape(&self, layer: usize, proj: &str) -> Option<(usize, usize)> {
        let d = self.layers.get(layer)?;
        let h = self.hidden_size;
        let q = d.n_heads * self.head_dim;
        let kv = d.n_kv_heads * self.head_dim;
        let f = d.intermediate_size;
        Some(match proj {
            "q_proj" => (q, h),
            "k_proj" | "v_proj" => (kv, h),
            "o_proj" => (h, q),
            "gate_proj" | "up_proj" => (f, h),
            "down_proj" => (h, f),
            _ => return None,
        })
    }
}

/// The projection names adapters can target, in PEFT's order.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// HF module path of a projection: `model.layers.{i}.self_attn.q_proj` / `model.layers.{i}.mlp.up_proj`.
pub fn module_path(layer: usize, proj: &str) -> String {
    let block = match proj {
        "q_proj" | "k_proj" | "v_proj" | "o_proj" => "self_attn",
        _ => "mlp",
    };
    format!("model.layers.{layer}.{block}.{proj}")
}
