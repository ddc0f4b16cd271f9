//! HF `config.json` <-> [`LlamaConfig`].
//!
//! Reads both dialects: hub files with a top-level `rope_theta` / `rope_scaling`, and
//! transformers 5's `rope_parameters: {rope_theta, rope_type, factor, ...}`. Defaults follow
//! transformers' `LlamaConfig` (`num_key_value_heads = num_attention_heads`,
//! `head_dim = hidden_size / num_attention_heads`, `rms_norm_eps = 1e-6`, `rope_theta = 1e4`,
//! `max_position_embeddings = 2048`, `tie_word_embeddings = false`).
//!
//! Per-layer dimensions (pruned models) are an extension: an optional `rora_layer_dims` list with
//! one `{"n_heads", "n_kv_heads", "intermediate_size"}` object per layer. When present it wins
//! over the uniform `num_attention_heads` / `num_key_value_heads` / `intermediate_size`, which
//! the writer still fills (from layer 0) so the file stays readable by other tools.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::config::{LayerDims, Llama3RopeScaling, LlamaConfig};
use super::error::{ModelError, Result};

/// `eos_token_id` as HF files write it: absent for none, one id, or a list for several
/// (config.json, generation_config.json).
pub fn set_eos_token_id(v: &mut Value, ids: &[u32]) {
    match ids {
        [] => {}
        [e] => v["eos_token_id"] = json!(e),
        many => v["eos_token_id"] = json!(many),
    }
}

fn field<'a>(obj: &'a Map<String, Value>, path: &Path, name: &str) -> Result<&'a Value> {
    obj.get(name).ok_or_else(|| ModelError::MissingField {
        path: path.into(),
        field: name.into(),
    })
}

fn as_usize(v: &Value, path: &Path, name: &str) -> Result<usize> {
    v.as_u64()
        .map(|x| x as usize)
        .ok_or_else(|| ModelError::InvalidField {
            path: path.into(),
            field: name.into(),
            reason: format!("expected a non-negative integer, got {v}"),
        })
}

fn as_f64(v: &Value, path: &Path, name: &str) -> Result<f64> {
    v.as_f64().ok_or_else(|| ModelError::InvalidField {
        path: path.into(),
        field: name.into(),
        reason: format!("expected a number, got {v}"),
    })
}

fn req_usize(obj: &Map<String, Value>, path: &Path, name: &str) -> Result<usize> {
    as_usize(field(obj, path, name)?, path, name)
}

fn opt_usize(obj: &Map<String, Value>, path: &Path, name: &str) -> Result<Option<usize>> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_usize(v, path, name).map(Some),
    }
}

fn opt_f64(obj: &Map<String, Value>, path: &Path, name: &str) -> Result<Option<f64>> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_f64(v, path, name).map(Some),
    }
}

fn rope_scaling(
    obj: &Map<String, Value>,
    path: &Path,
    name: &str,
) -> Result<Option<Llama3RopeScaling>> {
    let kind = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        "default" => Ok(None),
        "llama3" => {
            let get = |k: &str| {
                obj.get(k).ok_or_else(|| ModelError::MissingField {
                    path: path.into(),
                    field: format!("{name}.{k}"),
                })
            };
            Ok(Some(Llama3RopeScaling {
                factor: as_f64(get("factor")?, path, &format!("{name}.factor"))?,
                low_freq_factor: as_f64(
                    get("low_freq_factor")?,
                    path,
                    &format!("{name}.low_freq_factor"),
                )?,
                high_freq_factor: as_f64(
                    get("high_freq_factor")?,
                    path,
                    &format!("{name}.high_freq_factor"),
                )?,
                original_max_position_embeddings: as_usize(
                    get("original_max_position_embeddings")?,
                    path,
                    &format!("{name}.original_max_position_embeddings"),
                )?,
            }))
        }
        other => Err(ModelError::InvalidField {
            path: path.into(),
            field: format!("{name}.rope_type"),
            reason: format!("rope type `{other}` is not supported (default, llama3)"),
        }),
    }
}

fn token_ids(v: Option<&Value>, path: &Path, name: &str) -> Result<Vec<u32>> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| as_usize(x, path, name).map(|x| x as u32))
            .collect(),
        Some(x) => Ok(vec![as_usize(x, path, name)? as u32]),
    }
}

impl LlamaConfig {
    /// Parse an HF `config.json` (its text; `path` is named in errors).
    pub fn from_hf_json(text: &str, path: &Path) -> Result<Self> {
        let root: Value = serde_json::from_str(text).map_err(|e| ModelError::InvalidField {
            path: path.into(),
            field: "(json)".into(),
            reason: e.to_string(),
        })?;
        let obj = root.as_object().ok_or_else(|| ModelError::InvalidField {
            path: path.into(),
            field: "(root)".into(),
            reason: "expected a JSON object".into(),
        })?;
        if let Some(mt) = obj.get("model_type").and_then(Value::as_str)
            && !matches!(mt, "llama" | "mistral" | "smollm")
        {
            return Err(ModelError::Unsupported {
                path: path.into(),
                reason: format!("model_type `{mt}` is not a LLaMA"),
            });
        }
        let hidden_size = req_usize(obj, path, "hidden_size")?;
        let vocab_size = req_usize(obj, path, "vocab_size")?;
        let n_layers = req_usize(obj, path, "num_hidden_layers")?;
        let n_heads = req_usize(obj, path, "num_attention_heads")?;
        let n_kv_heads = opt_usize(obj, path, "num_key_value_heads")?.unwrap_or(n_heads);
        let intermediate_size = req_usize(obj, path, "intermediate_size")?;
        if n_heads == 0 {
            return Err(ModelError::InvalidField {
                path: path.into(),
                field: "num_attention_heads".into(),
                reason: "must be > 0".into(),
            });
        }
        let head_dim = opt_usize(obj, path, "head_dim")?.unwrap_or(hidden_size / n_heads);
        let layers = match obj.get("rora_layer_dims") {
            None | Some(Value::Null) => vec![
                LayerDims {
                    n_heads,
                    n_kv_heads,
                    intermediate_size
                };
                n_layers
            ],
            Some(v) => {
                let dims: Vec<LayerDims> =
                    serde_json::from_value(v.clone()).map_err(|e| ModelError::InvalidField {
                        path: path.into(),
                        field: "rora_layer_dims".into(),
                        reason: e.to_string(),
                    })?;
                if dims.len() != n_layers {
                    return Err(ModelError::InvalidField {
                        path: path.into(),
                        field: "rora_layer_dims".into(),
                        reason: format!("{} entries for {n_layers} layers", dims.len()),
                    });
                }
                dims
            }
        };
        let params = obj.get("rope_parameters").and_then(Value::as_object);
        let rope_theta = match params {
            Some(p) => opt_f64(p, path, "rope_theta")?,
            None => None,
        };
        let rope_theta = match rope_theta {
            Some(t) => t,
            None => opt_f64(obj, path, "rope_theta")?.unwrap_or(10_000.0),
        };
        let rope_scaling = match (params, obj.get("rope_scaling").and_then(Value::as_object)) {
            (_, Some(s)) => rope_scaling(s, path, "rope_scaling")?,
            (Some(p), None) => rope_scaling(p, path, "rope_parameters")?,
            (None, None) => None,
        };
        let cfg = LlamaConfig {
            vocab_size,
            hidden_size,
            head_dim,
            layers,
            rms_norm_eps: opt_f64(obj, path, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: opt_usize(obj, path, "max_position_embeddings")?
                .unwrap_or(2048),
            tie_word_embeddings: obj
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            bos_token_id: opt_usize(obj, path, "bos_token_id")?.map(|x| x as u32),
            eos_token_ids: token_ids(obj.get("eos_token_id"), path, "eos_token_id")?,
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The HF `config.json` for this config (classic dialect: top-level `rope_theta`).
    pub fn to_hf_json(&self) -> Value {
        let first = self.layers.first().copied().unwrap_or(LayerDims {
            n_heads: 1,
            n_kv_heads: 1,
            intermediate_size: 0,
        });
        let mut v = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_act": "silu",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "head_dim": self.head_dim,
            "num_hidden_layers": self.n_layers(),
            "num_attention_heads": first.n_heads,
            "num_key_value_heads": first.n_kv_heads,
            "intermediate_size": first.intermediate_size,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": false,
            "mlp_bias": false,
            "torch_dtype": "float32",
        });
        if let Some(s) = &self.rope_scaling {
            v["rope_scaling"] = json!({
                "rope_type": "llama3",
                "factor": s.factor,
                "low_freq_factor": s.low_freq_factor,
                "high_freq_factor": s.high_freq_factor,
                "original_max_position_embeddings": s.original_max_position_embeddings,
            });
        }
        if let Some(b) = self.bos_token_id {
            v["bos_token_id"] = json!(b);
        }
        set_eos_token_id(&mut v, &self.eos_token_ids);
        if !self.is_uniform() {
            v["rora_layer_dims"] = json!(self.layers);
        }
        v
    }

    /// Structural checks every loader applies: at least one layer, heads divisible by KV heads,
    /// an even head width.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |field: &str, reason: String| ModelError::InvalidField {
            path: path.into(),
            field: field.into(),
            reason,
        };
        if self.layers.is_empty() {
            return Err(bad("num_hidden_layers", "the model has no layers".into()));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return Err(bad(
                "head_dim",
                format!("{} must be even and > 0 for RoPE", self.head_dim),
            ));
        }
        if self.hidden_size == 0 || self.vocab_size == 0 {
            return Err(bad(
                "hidden_size",
                "hidden_size and vocab_size must be > 0".into(),
            ));
        }
        for (i, d) in self.layers.iter().enumerate() {
            if d.n_heads == 0 || d.n_kv_heads == 0 || d.n_heads % d.n_kv_heads != 0 {
                return Err(bad(
                    "num_key_value_heads",
                    format!(
                        "layer {i}: {} heads are not a multiple of {} KV heads",
                        d.n_heads, d.n_kv_heads
                    ),
                ));
            }
        }
        Ok(())
    }
}
