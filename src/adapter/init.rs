//! Seeded initialisation of adapter matrices, reproducible across runs and platforms.
//!
//! - [`LoraInit::Kaiming`] (PEFT's default, `init_lora_weights=True`): `A ~ kaiming_uniform(a=sqrt 5)`,
//!   i.e. `U(-1/sqrt(in), 1/sqrt(in))` (gain `sqrt(2/(1+5)) = sqrt(1/3)`, bound `gain*sqrt(3/in)`).
//! - [`LoraInit::Gaussian`] (PEFT's `init_lora_weights="gaussian"`): `A ~ N(0, std = 1/r)`; PEFT calls
//!   `nn.init.normal_(lora_A.weight, std=1 / r)` (`peft/tuners/lora/layer.py`, `reset_lora_parameters`).
//!
//! `B = 0` in both cases, so a fresh adapter leaves the model unchanged.
//! Every random stream is a ChaCha8 generator seeded from `(seed, module path, purpose)` through
//! blake3, so a module's values do not depend on which other modules are adapted or in what order.

use candle_core::{DType, Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How an adapter's matrices are initialised: `A` of a LoRA pair (`B` is always zero), or both
/// matrices of a bottleneck adapter (`super::bottleneck`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoraInit {
    #[default]
    Kaiming,
    Gaussian,
    /// Bottleneck: both matrices N(0, 0.02^2) (LLM-Adapters' `init_weights="bert"`).
    Bert,
    /// Bottleneck: `down` kaiming-uniform, `up = 0` (LLM-Adapters' `init_weights="mam_adapter"`).
    Mam,
}

impl LoraInit {
    /// The value PEFT's `init_lora_weights` takes for this scheme.
    pub fn peft_value(self) -> serde_json::Value {
        match self {
            LoraInit::Kaiming => serde_json::Value::Bool(true),
            LoraInit::Gaussian => serde_json::Value::String("gaussian".into()),
            LoraInit::Bert => serde_json::Value::String("bert".into()),
            LoraInit::Mam => serde_json::Value::String("mam_adapter".into()),
        }
    }

    /// Whether this scheme initialises bottleneck adapters (else LoRA pairs).
    pub fn is_bottleneck(self) -> bool {
        matches!(self, LoraInit::Bert | LoraInit::Mam)
    }
}

/// A 64-bit seed for one purpose of one module, independent of everything else.
pub fn derive_seed(seed: u64, module: &str, purpose: &str) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(module.as_bytes());
    h.update(&[0]);
    h.update(purpose.as_bytes());
    let bytes = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// `U(-bound, bound)` values of the given shape from a seeded stream.
pub fn uniform_tensor(
    shape: &[usize],
    bound: f64,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| (rng.random::<f64>() * 2.0 - 1.0) * bound)
        .collect();
    Tensor::from_vec(v, shape, device)?.to_dtype(dtype)
}

/// `N(0, std^2)` values of the given shape from a seeded stream (Box-Muller).
pub fn normal_tensor(
    shape: &[usize],
    std: f64,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let mut v = Vec::with_capacity(n + 1);
    while v.len() < n {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - rng.random::<f64>();
        let u2 = rng.random::<f64>();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        v.push(radius * angle.cos() * std);
        v.push(radius * angle.sin() * std);
    }
    v.truncate(n);
    Tensor::from_vec(v, shape, device)?.to_dtype(dtype)
}

/// The initial `A` (`[r, in]`) for a module.
pub fn init_a(
    init: LoraInit,
    rank: usize,
    in_features: usize,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    match init {
        LoraInit::Kaiming => {
            let bound = 1.0 / (in_features as f64).sqrt();
            uniform_tensor(&[rank, in_features], bound, seed, dtype, device)
        }
        LoraInit::Gaussian => {
            normal_tensor(&[rank, in_features], 1.0 / rank as f64, seed, dtype, device)
        }
        LoraInit::Bert | LoraInit::Mam => {
            candle_core::bail!("{init:?} initialises bottleneck adapters, not LoRA")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(t: &Tensor) -> (f64, f64, f64) {
        let v: Vec<f64> = t
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        (mean, var, max)
    }

    // Reference: U(-b, b) has variance b^2/3; with b = 1/sqrt(in) that is 1/(3 in).
    #[test]
    fn kaiming_a_is_uniform_within_one_over_sqrt_in() {
        let a = init_a(LoraInit::Kaiming, 16, 400, 7, DType::F32, &Device::Cpu).unwrap();
        let (mean, var, max) = moments(&a);
        assert!(max <= 1.0 / 20.0 + 1e-7);
        assert!(max > 0.95 / 20.0);
        assert!(mean.abs() < 2e-3);
        assert!((var / (1.0 / 1200.0) - 1.0).abs() < 0.05, "var {var}");
    }

    // Reference: PEFT's gaussian init, std = 1/r.
    #[test]
    fn gaussian_a_has_std_one_over_r() {
        let a = init_a(LoraInit::Gaussian, 8, 1000, 7, DType::F32, &Device::Cpu).unwrap();
        let (mean, var, _) = moments(&a);
        assert!(mean.abs() < 5e-3);
        assert!((var.sqrt() * 8.0 - 1.0).abs() < 0.03, "std {}", var.sqrt());
    }

    #[test]
    fn seeds_are_reproducible_and_distinct_per_module() {
        let s1 = derive_seed(42, "model.layers.0.self_attn.q_proj", "lora_A");
        assert_eq!(
            s1,
            derive_seed(42, "model.layers.0.self_attn.q_proj", "lora_A")
        );
        assert_ne!(
            s1,
            derive_seed(42, "model.layers.0.self_attn.k_proj", "lora_A")
        );
        assert_ne!(
            s1,
            derive_seed(43, "model.layers.0.self_attn.q_proj", "lora_A")
        );
        assert_ne!(
            s1,
            derive_seed(42, "model.layers.0.self_attn.q_proj", "dropout")
        );
    }
}
