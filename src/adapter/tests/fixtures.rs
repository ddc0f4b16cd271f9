//! A toy "model": the seven LLaMA projections of a tiny config, with seeded random weights.

use candle_core::{DType, Device, Module, Tensor};

use crate::adapter::init::uniform_tensor;
use crate::adapter::{AdaptableModel, Linear};
use crate::model::config::{LayerDims, LlamaConfig};

pub fn tiny_config(n_layers: usize) -> LlamaConfig {
    LlamaConfig {
        vocab_size: 32,
        hidden_size: 16,
        head_dim: 4,
        layers: vec![
            LayerDims {
                n_heads: 4,
                n_kv_heads: 2,
                intermediate_size: 24
            };
            n_layers
        ],
        rms_norm_eps: 1e-5,
        rope_theta: 10000.0,
        rope_scaling: None,
        max_position_embeddings: 64,
        tie_word_embeddings: false,
        bos_token_id: None,
        eos_token_ids: vec![],
    }
}

/// Every projection of `tiny_config(n_layers)` with weights ~ U(-0.5, 0.5), in `dtype`.
pub fn toy_model(n_layers: usize, dtype: DType) -> Vec<(String, Linear)> {
    let cfg = tiny_config(n_layers);
    crate::adapter::params::llama_linear_shapes(&cfg)
        .into_iter()
        .enumerate()
        .map(|(i, (path, (o, inp)))| {
            let w = uniform_tensor(&[o, inp], 0.5, 1000 + i as u64, dtype, &Device::Cpu).unwrap();
            (path, Linear::new(w, None))
        })
        .collect()
}

pub fn rand(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    uniform_tensor(shape, 1.0, seed, dtype, &Device::Cpu).unwrap()
}

/// Each module's output on its own seeded input `[2, 3, in]`.
pub fn outputs<M: AdaptableModel>(model: &M, dtype: DType) -> Vec<Tensor> {
    model
        .linears()
        .into_iter()
        .enumerate()
        .map(|(i, (_, l))| {
            l.forward(&rand(&[2, 3, l.shape().1], 50 + i as u64, dtype))
                .unwrap()
        })
        .collect()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Largest difference over all module outputs.
pub fn max_diff_all(a: &[Tensor], b: &[Tensor]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| max_abs_diff(x, y))
        .fold(0.0, f64::max)
}

/// Give every adapter's B (and A) random values so merges and gradients are non-trivial.
pub fn randomize_adapters<M: AdaptableModel>(model: &M, seed: u64) {
    for (i, (name, var)) in crate::adapter::trainable_vars(model)
        .into_iter()
        .enumerate()
    {
        if name.ends_with("lora_B.weight") {
            let t = rand(var.dims(), seed + i as u64, var.dtype())
                .affine(0.3, 0.0)
                .unwrap();
            var.set(&t).unwrap();
        }
    }
}
