//! Tests of the model module. Reference values come from: the tiny GGUF's golden file (an
//! independent numpy forward, see ASSETS.md), candle-transformers' llama (an independent candle
//! implementation of the same HF layout), finite differences, and the SmolLM2 asset's documented
//! behaviour (ASSETS.md: perplexity about 6.7, "Paris").

mod adapters;
mod assets;
mod errors;
mod golden;
mod grad;
pub mod masking;
mod packed;
mod prefix;
mod quant;
mod reference;
mod roundtrip;
mod spm;

use candle_core::{DType, Device, Tensor};

use super::llama::Llama;
use super::random::{RandomSpec, random_tensors};

/// A random model with a visible signal (std 0.2 so logits are far from uniform).
pub fn random_model(spec: &RandomSpec) -> Llama {
    let (cfg, w) = random_tensors(spec, &Device::Cpu).expect("random tensors");
    Llama::from_tensors(cfg, w, DType::F32).expect("model")
}

pub fn spec(seed: u64) -> RandomSpec {
    let mut s = RandomSpec::tiny(seed);
    s.std = 0.2;
    s
}

pub fn ids<R: AsRef<[u32]>>(rows: &[R]) -> Tensor {
    let t = rows[0].as_ref().len();
    let flat: Vec<u32> = rows
        .iter()
        .flat_map(|r| r.as_ref().iter().copied())
        .collect();
    Tensor::from_vec(flat, (rows.len(), t), &Device::Cpu).expect("ids")
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .expect("sub")
        .abs()
        .expect("abs")
        .flatten_all()
        .expect("flat")
        .max(0)
        .expect("max")
        .to_scalar()
        .expect("scalar")
}

/// `$RORA_SHARED_DIR` or `../shared` next to the crate.
pub fn shared_dir() -> std::path::PathBuf {
    std::env::var_os("RORA_SHARED_DIR")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
