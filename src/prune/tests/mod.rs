//! Tests of pruning. Reference values: exact counts from the definitions (floor(s * n) zeros,
//! N:M groups), hand computations (Wanda scores on literal numbers, RMS-normed embeddings for
//! calibration norms), the identity "removing a head or channel whose output columns are zero
//! changes nothing", and the SmolLM2 asset (perplexity grows with sparsity).

mod assets;
mod merge;
mod structured;
mod unstructured;

use candle_core::{DType, Device, Tensor};

use crate::lm::CausalLm;
use crate::model::Llama;
use crate::model::random::{RandomSpec, random_tensors};

/// The tiny shape (2 layers, hidden 64, 4 heads, 2 KV heads, FFN 128) with std 0.2 weights.
pub fn tiny(seed: u64) -> Llama {
    let mut s = RandomSpec::tiny(seed);
    s.std = 0.2;
    let (cfg, w) = random_tensors(&s, &Device::Cpu).expect("random tensors");
    Llama::from_tensors(cfg, w, DType::F32).expect("model")
}

/// Byte-token sequences for calibration and logits checks.
pub fn sequences() -> Vec<Vec<u32>> {
    ["The quick brown fox jumps.", "Pruning keeps what matters!"]
        .iter()
        .map(|s| s.bytes().map(|b| u32::from(b) + 3).collect())
        .collect()
}

pub fn logits(model: &Llama, seq: &[u32]) -> Vec<f32> {
    let ids = Tensor::from_slice(seq, (1, seq.len()), &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, seq.len()), DType::U32, &Device::Cpu).unwrap();
    model
        .forward(&ids, &mask)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn weight(model: &Llama, path: &str) -> Vec<Vec<f32>> {
    let lins = model.linears();
    let (_, l) = lins.iter().find(|(p, _)| p == path).expect("module");
    l.weight().to_vec2().unwrap()
}

pub fn shared_dir() -> std::path::PathBuf {
    std::env::var_os("RORA_SHARED_DIR")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}
