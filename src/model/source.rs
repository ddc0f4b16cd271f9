//! Where a model comes from and the one entry point that loads it: [`load`].
//!
//! A [`ModelSource`] is a GGUF file, an HF model directory, or a seeded random model; every
//! loader yields a [`LoadedModel`] with the same parts, so nothing downstream cares which.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use tokenizers::Tokenizer;

use super::config::LlamaConfig;
use super::error::{ModelError, Result};
use super::llama::Llama;
use super::random::RandomSpec;
use super::{gguf, hf, random};

pub use super::tokenizer::SpecialTokens;

#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A llama.cpp GGUF file.
    Gguf(PathBuf),
    /// An HF model directory (config.json, safetensors, tokenizer.json).
    HfDir(PathBuf),
    /// A seeded random model with the built-in byte tokenizer.
    Random(RandomSpec),
}

impl ModelSource {
    /// From a command-line spec: `random:<preset>[,key=value...]` (see [`RandomSpec::parse`]),
    /// a `.gguf` file, or a directory.
    pub fn parse(spec: &str) -> Result<Self> {
        if let Some(rest) = spec.strip_prefix("random:") {
            return Ok(ModelSource::Random(RandomSpec::parse(rest)?));
        }
        let p = PathBuf::from(spec);
        if p.is_dir() {
            Ok(ModelSource::HfDir(p))
        } else if p
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            Ok(ModelSource::Gguf(p))
        } else if !p.exists() {
            Err(ModelError::io(
                &p,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            ))
        } else {
            Err(ModelError::InvalidSpec {
                spec: spec.into(),
                reason: "expected a .gguf file, an HF model directory, or random:<preset>".into(),
            })
        }
    }

    /// A one-line description for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            ModelSource::Gguf(p) => format!("gguf {}", p.display()),
            ModelSource::HfDir(p) => format!("hf {}", p.display()),
            ModelSource::Random(r) => format!("random seed={} {}", r.seed, r.shape_summary()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Dtype of the base weights: f32 (default), bf16 or f16.
    pub dtype: DType,
    pub device: Device,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            device: Device::Cpu,
        }
    }
}

pub struct LoadedModel {
    pub model: Llama,
    pub tokenizer: Tokenizer,
    pub config: LlamaConfig,
    pub special: SpecialTokens,
    pub chat_template: Option<String>,
    pub source: String,
}

impl LoadedModel {
    /// Write this model as an HF directory that [`load`] reads back exactly.
    pub fn save_hf_dir(&self, dir: &Path) -> Result<()> {
        hf::save_hf_dir(
            &self.model,
            &self.tokenizer,
            &self.special,
            self.chat_template.as_deref(),
            dir,
        )
    }
}

/// Load a model from any source.
pub fn load(source: &ModelSource, opts: &LoadOptions) -> Result<LoadedModel> {
    if !matches!(opts.dtype, DType::F32 | DType::BF16 | DType::F16) {
        return Err(ModelError::InvalidInput(format!(
            "compute dtype {:?} (f32, bf16 or f16)",
            opts.dtype
        )));
    }
    let describe = source.describe();
    let (model, tokenizer, special, chat_template) = match source {
        ModelSource::Gguf(p) => {
            let g = gguf::load_gguf(p, opts.dtype, &opts.device)?;
            (
                Llama::from_tensors(g.config, g.tensors, opts.dtype)?,
                g.tokenizer,
                g.special,
                g.chat_template,
            )
        }
        ModelSource::HfDir(p) => {
            let h = hf::load_hf_dir(p, opts.dtype, &opts.device)?;
            (
                Llama::from_tensors(h.config, h.tensors, opts.dtype)?,
                h.tokenizer,
                h.special,
                h.chat_template,
            )
        }
        ModelSource::Random(spec) => {
            let (cfg, tensors) = random::random_tensors(spec, &opts.device)?;
            let tokenizer =
                super::tokenizer::byte_tokenizer().map_err(|reason| ModelError::Tokenizer {
                    path: "(built-in byte tokenizer)".into(),
                    reason,
                })?;
            let special = SpecialTokens {
                bos: Some(1),
                eos: vec![2],
                pad: Some(2),
            };
            (
                Llama::from_tensors(cfg, tensors, opts.dtype)?,
                tokenizer,
                special,
                Some(random::CHATML_TEMPLATE.to_string()),
            )
        }
    };
    Ok(LoadedModel {
        config: model.config().clone(),
        model,
        tokenizer,
        special,
        chat_template,
        source: describe,
    })
}
