//! Prefix tuning on disk in PEFT's `PREFIX_TUNING` layout (`peft/tuners/prefix_tuning/config.py`,
//! `PeftModel.save_pretrained`; PEFT 0.21): `adapter_config.json` with `peft_type`
//! `"PREFIX_TUNING"`, `num_virtual_tokens`, `num_layers`, `token_dim` and `num_attention_heads`
//! (the KV heads, as PEFT >= 0.12 fills them for grouped-query models), `encoder_hidden_size =
//! token_dim`, `num_transformer_submodules` 1, `prefix_projection` false, `task_type`
//! `"CAUSAL_LM"`; and `adapter_model.safetensors` (`{"format": "pt"}`) with the one f32 tensor
//! `prompt_embeddings` `[n, num_layers * 2 * token_dim]`. LLM-Adapters' PEFT reads the same
//! config fields and key from `adapter_model.bin`, which is written beside it.
//!
//! Loading reads the safetensors file, else the `.bin`, and checks the config's layer count,
//! token width and heads against the model, naming the field that differs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::attach::{AdaptableModel, AttachReport, PREFIX_KEY, adapter_home};
use super::bottleneck_io::read_tensors;
use super::config::{AdapterConfig, Targets};
use super::error::AdapterError;
use super::peft_convert::SaveOptions;
use super::peft_io::{CONFIG_FILE, format_err, io, write_json, write_weights};
use super::prefix::{Prefix, PrefixShape};
use super::scaling::ScalingRule;
use super::spec::Method;

pub const PEFT_TYPE: &str = "PREFIX_TUNING";

/// PEFT's `PrefixTuningConfig` (keys sorted, as `save_pretrained` writes them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixFile {
    #[serde(default)]
    pub auto_mapping: Option<serde_json::Value>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub encoder_hidden_size: Option<usize>,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default)]
    pub init_weights: Option<serde_json::Value>,
    #[serde(default)]
    pub modules_to_save: Option<serde_json::Value>,
    #[serde(default)]
    pub num_attention_heads: Option<usize>,
    #[serde(default)]
    pub num_layers: Option<usize>,
    #[serde(default)]
    pub num_transformer_submodules: Option<usize>,
    pub num_virtual_tokens: usize,
    pub peft_type: String,
    #[serde(default)]
    pub prefix_projection: bool,
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub token_dim: Option<usize>,
}

/// rora's config of a prefix of `n` virtual tokens (the rank field holds `n`).
pub fn prefix_config(n: usize) -> AdapterConfig {
    AdapterConfig::new(
        Method::Prefix,
        ScalingRule::Fixed(1.0),
        n,
        1.0,
        Targets::AllLinear,
    )
}

/// rora's config for a PEFT prefix-tuning config read from `path`; what rora does not implement
/// is refused naming the field.
pub fn adapter_config(f: &PrefixFile, path: &Path) -> Result<AdapterConfig, AdapterError> {
    let bad = |field: &str, msg: &str| format_err(path, format!("{field}: {msg}"));
    if f.num_virtual_tokens == 0 {
        return Err(bad("num_virtual_tokens", "must be at least 1"));
    }
    if f.prefix_projection && !f.inference_mode {
        return Err(bad(
            "prefix_projection",
            "a training checkpoint of the projection MLP, not the projected prompt_embeddings (PEFT refuses it too); save it with inference_mode",
        ));
    }
    if f.num_transformer_submodules.is_some_and(|n| n != 1) {
        return Err(bad(
            "num_transformer_submodules",
            "encoder-decoder prefixes are not implemented (LLaMA is decoder-only: 1)",
        ));
    }
    if f.task_type.as_deref().is_some_and(|t| t != "CAUSAL_LM") {
        return Err(bad("task_type", "rora runs CAUSAL_LM models"));
    }
    if f.modules_to_save.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(bad(
            "modules_to_save",
            "full copies of base modules are not implemented",
        ));
    }
    Ok(prefix_config(f.num_virtual_tokens))
}

/// The file config of the prefix on `model`.
pub fn file_config(n: usize, shape: PrefixShape, opts: &SaveOptions) -> PrefixFile {
    PrefixFile {
        auto_mapping: None,
        base_model_name_or_path: opts.base_model_name_or_path.clone(),
        encoder_hidden_size: Some(shape.token_dim()),
        inference_mode: true,
        init_weights: None,
        modules_to_save: None,
        num_attention_heads: Some(shape.kv_heads),
        num_layers: Some(shape.layers),
        num_transformer_submodules: Some(1),
        num_virtual_tokens: n,
        peft_type: PEFT_TYPE.into(),
        prefix_projection: false,
        revision: opts.revision.clone(),
        task_type: Some("CAUSAL_LM".into()),
        token_dim: Some(shape.token_dim()),
    }
}

/// Write `adapter_config.json`, `adapter_model.safetensors` and `adapter_model.bin`.
pub fn save<M: AdaptableModel + ?Sized>(
    model: &M,
    dir: &Path,
    opts: &SaveOptions,
) -> Result<(), AdapterError> {
    let p = model.prefix().ok_or(AdapterError::NoTargetMatched {
        targets: "prefix".into(),
        available: "the model carries no prefix to save".into(),
    })?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let t = p
        .var()
        .as_tensor()
        .detach()
        .to_device(&candle_core::Device::Cpu)
        .and_then(|t| t.to_dtype(candle_core::DType::F32))
        .map_err(AdapterError::tensor("prefix"))?;
    write_weights(dir, &[(PREFIX_KEY.to_string(), t)], true)?;
    write_json(
        &dir.join(CONFIG_FILE),
        &file_config(p.tokens(), p.shape(), opts),
    )
}

/// Install the prefix of `dir` (its config `f`, read from `config_path`) on `model`.
pub fn load<M: AdaptableModel + ?Sized>(
    model: &mut M,
    dir: &Path,
    f: &PrefixFile,
    config_path: &Path,
) -> Result<AttachReport, AdapterError> {
    let shape = model.prefix_shape().ok_or(AdapterError::NoPrefix)?;
    for (field, got, want) in [
        ("num_layers", f.num_layers, shape.layers),
        ("token_dim", f.token_dim, shape.token_dim()),
        ("num_attention_heads", f.num_attention_heads, shape.kv_heads),
    ] {
        if let Some(g) = got
            && g != want
        {
            let why = if field == "num_layers" {
                String::new()
            } else {
                format!(
                    " (the model's KV heads x head dim: {} x {}; PEFT before 0.12 sized prefixes of grouped-query models by all heads)",
                    shape.kv_heads, shape.head_dim
                )
            };
            return Err(format_err(
                config_path,
                format!("{field}: {g}, the model has {want}{why}"),
            ));
        }
    }
    if model.prefix().is_some() {
        return Err(AdapterError::AlreadyAdapted {
            module: "prefix".into(),
        });
    }
    let (file, tensors) = read_tensors(dir)?;
    let mut found = None;
    for (k, t) in tensors {
        if k != PREFIX_KEY {
            return Err(format_err(
                &file,
                format!("tensor {k}: a prefix-tuning file holds only {PREFIX_KEY}"),
            ));
        }
        found = Some(t);
    }
    let t = found.ok_or_else(|| format_err(&file, format!("missing tensor {PREFIX_KEY}")))?;
    let (device, dtype) = adapter_home(model);
    let t = t
        .to_device(&device)
        .and_then(|t| t.to_dtype(dtype))
        .map_err(|e| format_err(&file, format!("tensor {PREFIX_KEY}: {e}")))?;
    if t.dims().first() != Some(&f.num_virtual_tokens) {
        return Err(format_err(
            &file,
            format!(
                "tensor {PREFIX_KEY}: shape {:?}, but num_virtual_tokens is {}",
                t.dims(),
                f.num_virtual_tokens
            ),
        ));
    }
    let p = Prefix::new(&t, shape).map_err(|e| format_err(&file, e.to_string()))?;
    model.set_prefix(Some(p))?;
    Ok(AttachReport::prefix(f.num_virtual_tokens, shape))
}
