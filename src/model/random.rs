//! Seeded random LLaMA models with the built-in 259-token byte tokenizer (quickstart pipelines,
//! tests). Each tensor is drawn from its own ChaCha stream keyed by blake3(seed, tensor name), so
//! the same seed gives identical weights whatever the load order. Projections and embeddings
//! are N(0, std^2) (HF's `initializer_range`, 0.02 by default); norm weights are 1.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::{LayerDims, LlamaConfig, PROJECTIONS, UniformShape, module_path};
use super::error::{ModelError, Result};
use super::weights::NamedTensors;

/// ChatML without a system prompt (the byte vocabulary's three specials are ChatML's).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The byte tokenizer's vocabulary size.
pub const BYTE_VOCAB: usize = 259;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomSpec {
    pub config: LlamaConfig,
    pub seed: u64,
    /// Standard deviation of projection and embedding weights.
    pub std: f64,
}

impl RandomSpec {
    /// A uniform shape with the byte vocabulary, tied embeddings, theta 1e4, eps 1e-5.
    pub fn uniform(
        hidden: usize,
        layers: usize,
        heads: usize,
        kv_heads: usize,
        ffn: usize,
        seed: u64,
    ) -> Self {
        let config = LlamaConfig {
            tie_word_embeddings: true,
            bos_token_id: Some(1),
            eos_token_ids: vec![2],
            ..LlamaConfig::uniform(UniformShape {
                vocab: BYTE_VOCAB,
                hidden,
                layers,
                heads,
                kv_heads,
                ffn,
            })
        };
        Self {
            config,
            seed,
            std: 0.02,
        }
    }

    /// The tiny test GGUF's shape: 2 layers, hidden 64, 4 heads, 2 KV heads, FFN 128.
    pub fn tiny(seed: u64) -> Self {
        Self::uniform(64, 2, 4, 2, 128, seed)
    }

    /// `<preset>[,key=value...]` with presets `tiny` (above) and `small` (4 layers, hidden 256,
    /// 8 heads, 4 KV heads, FFN 688); keys `seed hidden layers heads kv_heads ffn std theta tied`.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |reason: String| ModelError::InvalidSpec {
            spec: format!("random:{spec}"),
            reason,
        };
        let mut parts = spec.split(',');
        let preset = parts.next().unwrap_or("tiny");
        let (mut hidden, mut layers, mut heads, mut kv, mut ffn) = match preset {
            "tiny" | "" => (64, 2, 4, 2, 128),
            "small" => (256, 4, 8, 4, 688),
            other => return Err(bad(format!("unknown preset `{other}` (tiny, small)"))),
        };
        let (mut seed, mut std, mut theta, mut tied) = (0u64, 0.02f64, 10_000.0f64, true);
        for kv_pair in parts {
            let (k, v) = kv_pair
                .split_once('=')
                .ok_or_else(|| bad(format!("`{kv_pair}` is not key=value")))?;
            let num = |v: &str| {
                v.parse::<usize>()
                    .map_err(|_| bad(format!("`{k}` needs an integer, got `{v}`")))
            };
            let float = |v: &str| {
                v.parse::<f64>()
                    .map_err(|_| bad(format!("`{k}` needs a number, got `{v}`")))
            };
            match k {
                "seed" => seed = num(v)? as u64,
                "hidden" => hidden = num(v)?,
                "layers" => layers = num(v)?,
                "heads" => heads = num(v)?,
                "kv_heads" => kv = num(v)?,
                "ffn" => ffn = num(v)?,
                "std" => std = float(v)?,
                "theta" => theta = float(v)?,
                "tied" => tied = v == "true",
                other => return Err(bad(format!("unknown key `{other}`"))),
            }
        }
        if heads == 0 || hidden % heads != 0 {
            return Err(bad(format!(
                "hidden {hidden} is not a multiple of heads {heads}"
            )));
        }
        let mut s = Self::uniform(hidden, layers, heads, kv, ffn, seed);
        s.std = std;
        s.config.rope_theta = theta;
        s.config.tie_word_embeddings = tied;
        s.config
            .validate(std::path::Path::new("(random spec)"))
            .map_err(|e| bad(e.to_string()))?;
        Ok(s)
    }

    pub fn shape_summary(&self) -> String {
        let c = &self.config;
        let d = c.layers.first().copied().unwrap_or(LayerDims {
            n_heads: 0,
            n_kv_heads: 0,
            intermediate_size: 0,
        });
        format!(
            "layers={} hidden={} heads={} kv_heads={} ffn={} vocab={}",
            c.n_layers(),
            c.hidden_size,
            d.n_heads,
            d.n_kv_heads,
            d.intermediate_size,
            c.vocab_size
        )
    }
}

/// Standard normal draws (Box-Muller) from a stream keyed by `(seed, name)`.
fn normal(seed: u64, name: &str, n: usize, std: f64) -> Vec<f32> {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(name.as_bytes());
    let mut rng = ChaCha8Rng::from_seed(*h.finalize().as_bytes());
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let a = 2.0 * std::f64::consts::PI * u2;
        out.push((r * a.cos()) as f32);
        out.push((r * a.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// The config and HF-named f32 tensors of a random model.
pub fn random_tensors(spec: &RandomSpec, device: &Device) -> Result<(LlamaConfig, NamedTensors)> {
    let c = &spec.config;
    // the byte tokenizer's ids must be rows; more rows are a padded vocabulary, as HF allows
    if c.vocab_size < BYTE_VOCAB {
        return Err(ModelError::VocabMismatch {
            path: "(random model)".into(),
            tokenizer: BYTE_VOCAB,
            model: c.vocab_size,
        });
    }
    c.validate(std::path::Path::new("(random model)"))?;
    let mut w = NamedTensors::new("(random model)");
    let mut gauss = |name: String, shape: (usize, usize)| -> Result<()> {
        let t = Tensor::from_vec(
            normal(spec.seed, &name, shape.0 * shape.1, spec.std),
            shape,
            device,
        )?;
        w.insert(name, t);
        Ok(())
    };
    gauss(
        "model.embed_tokens.weight".into(),
        (c.vocab_size, c.hidden_size),
    )?;
    if !c.tie_word_embeddings {
        gauss("lm_head.weight".into(), (c.vocab_size, c.hidden_size))?;
    }
    for i in 0..c.n_layers() {
        for p in PROJECTIONS {
            // invariant: every PROJECTIONS name has a shape and i < n_layers.
            let shape = c
                .proj_shape(i, p)
                .ok_or_else(|| ModelError::InvalidInput(p.into()))?;
            gauss(format!("{}.weight", module_path(i, p)), shape)?;
        }
    }
    let ones = Tensor::ones(c.hidden_size, candle_core::DType::F32, device)?;
    for i in 0..c.n_layers() {
        w.insert(
            format!("model.layers.{i}.input_layernorm.weight"),
            ones.clone(),
        );
        w.insert(
            format!("model.layers.{i}.post_attention_layernorm.weight"),
            ones.clone(),
        );
    }
    w.insert("model.norm.weight", ones);
    Ok((c.clone(), w))
}
