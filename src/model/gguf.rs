//! GGUF (llama.cpp) -> HF-named f32/bf16 tensors, a [`LlamaConfig`] from `llama.*` metadata, and
//! the tokenizer from `tokenizer.ggml.*` metadata.
//!
//! Guarantees: every supported quant type (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K)
//! is dequantized; Q and K rows are un-permuted from llama.cpp's interleaved-RoPE order back to
//! HF's half-split order (`w.reshape(n_head, hd/2, 2, in).swapaxes(1, 2)`), so the same forward
//! serves both formats; a missing `output.weight` means tied embeddings.

use std::path::Path;

use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::config::{LayerDims, LlamaConfig};
use super::error::{ModelError, Result};
use super::gguf_file::{GgufFile, MetaValue};
use super::tokenizer::SpecialTokens;
use super::tokenizer::{BpeSpec, SpmSpec, byte_level_bpe, sentencepiece_bpe};
use super::weights::NamedTensors;

/// What the GGUF holds besides weights.
pub struct GgufParts {
    pub config: LlamaConfig,
    pub tensors: NamedTensors,
    pub tokenizer: tokenizers::Tokenizer,
    pub special: SpecialTokens,
    pub chat_template: Option<String>,
}

/// The HF name of a GGUF tensor name, or `None` for tensors the model does not use.
pub fn hf_name(gguf: &str) -> Option<String> {
    Some(match gguf {
        "token_embd.weight" => "model.embed_tokens.weight".into(),
        "output_norm.weight" => "model.norm.weight".into(),
        "output.weight" => "lm_head.weight".into(),
        _ => {
            let rest = gguf.strip_prefix("blk.")?;
            let (layer, part) = rest.split_once('.')?;
            let layer: usize = layer.parse().ok()?;
            let hf = match part {
                "attn_norm.weight" => "input_layernorm.weight",
                "ffn_norm.weight" => "post_attention_layernorm.weight",
                "attn_q.weight" => "self_attn.q_proj.weight",
                "attn_k.weight" => "self_attn.k_proj.weight",
                "attn_v.weight" => "self_attn.v_proj.weight",
                "attn_output.weight" => "self_attn.o_proj.weight",
                "ffn_gate.weight" => "mlp.gate_proj.weight",
                "ffn_up.weight" => "mlp.up_proj.weight",
                "ffn_down.weight" => "mlp.down_proj.weight",
                _ => return None,
            };
            format!("model.layers.{layer}.{hf}")
        }
    })
}

/// Undo llama.cpp's Q/K row permutation: `[out, in]` with `out = n_head * head_dim`.
pub fn unpermute(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / n_head;
    w.reshape((n_head, hd / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))
}

/// The inverse of [`unpermute`] (HF -> llama.cpp order), for writing test files.
pub fn permute(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / n_head;
    w.reshape((n_head, 2, hd / 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))
}

fn meta_usize(f: &GgufFile, key: &str) -> Result<Option<usize>> {
    match f.meta(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|x| Some(x as usize))
            .ok_or_else(|| ModelError::InvalidField {
                path: f.path.clone(),
                field: key.into(),
                reason: format!("expected an unsigned integer, got {v:?}"),
            }),
    }
}

fn req_usize(f: &GgufFile, key: &str) -> Result<usize> {
    meta_usize(f, key)?.ok_or_else(|| ModelError::MissingField {
        path: f.path.clone(),
        field: key.into(),
    })
}

fn meta_f64(f: &GgufFile, key: &str) -> Result<Option<f64>> {
    match f.meta(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| ModelError::InvalidField {
                path: f.path.clone(),
                field: key.into(),
                reason: format!("expected a number, got {v:?}"),
            }),
    }
}

fn config(f: &GgufFile, vocab_from_tokens: Option<usize>) -> Result<LlamaConfig> {
    let arch = f
        .meta("general.architecture")
        .and_then(MetaValue::as_str)
        .unwrap_or("(none)");
    if arch != "llama" {
        return Err(ModelError::Unsupported {
            path: f.path.clone(),
            reason: format!("general.architecture is `{arch}`, not llama"),
        });
    }
    if let Some(kind) = f
        .meta("llama.rope.scaling.type")
        .and_then(MetaValue::as_str)
        && kind != "none"
    {
        return Err(ModelError::Unsupported {
            path: f.path.clone(),
            reason: format!("llama.rope.scaling.type `{kind}`"),
        });
    }
    if f.tensor("rope_freqs.weight").is_some() {
        return Err(ModelError::Unsupported {
            path: f.path.clone(),
            reason: "tensor `rope_freqs.weight` (per-frequency RoPE factors) is not supported"
                .into(),
        });
    }
    let hidden = req_usize(f, "llama.embedding_length")?;
    let n_heads = req_usize(f, "llama.attention.head_count")?;
    let n_kv = meta_usize(f, "llama.attention.head_count_kv")?.unwrap_or(n_heads);
    let ffn = req_usize(f, "llama.feed_forward_length")?;
    let n_layers = req_usize(f, "llama.block_count")?;
    let embd_vocab = f
        .tensor("token_embd.weight")
        .and_then(|t| t.dims.first().copied());
    let vocab = meta_usize(f, "llama.vocab_size")?
        .or(vocab_from_tokens)
        .or(embd_vocab)
        .ok_or_else(|| ModelError::MissingField {
            path: f.path.clone(),
            field: "llama.vocab_size".into(),
        })?;
    let head_dim = match meta_usize(f, "llama.attention.key_length")? {
        Some(d) => d,
        None => hidden / n_heads.max(1),
    };
    let u32_meta = |k: &str| f.meta(k).and_then(MetaValue::as_u64).map(|x| x as u32);
    let cfg = LlamaConfig {
        vocab_size: vocab,
        hidden_size: hidden,
        head_dim,
        layers: vec![
            LayerDims {
                n_heads,
                n_kv_heads: n_kv,
                intermediate_size: ffn
            };
            n_layers
        ],
        rms_norm_eps: meta_f64(f, "llama.attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5),
        rope_theta: meta_f64(f, "llama.rope.freq_base")?.unwrap_or(10_000.0),
        rope_scaling: None,
        max_position_embeddings: meta_usize(f, "llama.context_length")?.unwrap_or(2048),
        tie_word_embeddings: f.tensor("output.weight").is_none(),
        bos_token_id: u32_meta("tokenizer.ggml.bos_token_id"),
        eos_token_ids: u32_meta("tokenizer.ggml.eos_token_id")
            .into_iter()
            .collect(),
    };
    cfg.validate(&f.path)?;
    Ok(cfg)
}

fn strings(f: &GgufFile, key: &str) -> Result<Option<Vec<String>>> {
    let Some(v) = f.meta(key) else {
        return Ok(None);
    };
    let bad = || ModelError::InvalidField {
        path: f.path.clone(),
        field: key.into(),
        reason: "expected an array of strings".into(),
    };
    let arr = v.as_array().ok_or_else(bad)?;
    arr.iter()
        .map(|x| x.as_str().map(str::to_string).ok_or_else(bad))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

fn tokenizer(f: &GgufFile, tokens: &[String]) -> Result<tokenizers::Tokenizer> {
    let model = f
        .meta("tokenizer.ggml.model")
        .and_then(MetaValue::as_str)
        .unwrap_or("(none)");
    if !matches!(model, "gpt2" | "llama") {
        return Err(ModelError::Tokenizer {
            path: f.path.clone(),
            reason: format!(
                "tokenizer.ggml.model `{model}` is not supported (byte-level BPE `gpt2`, SentencePiece `llama`)"
            ),
        });
    }
    let merges = strings(f, "tokenizer.ggml.merges")?
        .unwrap_or_default()
        .into_iter()
        .map(|m| match m.split_once(' ') {
            Some((a, b)) => Ok((a.to_string(), b.to_string())),
            None => Err(ModelError::Tokenizer {
                path: f.path.clone(),
                reason: format!("tokenizer.ggml.merges: bad entry `{m}`"),
            }),
        })
        .collect::<Result<Vec<_>>>()?;
    let types: Vec<u64> = match f
        .meta("tokenizer.ggml.token_type")
        .and_then(MetaValue::as_array)
    {
        Some(types) => types.iter().map(|t| t.as_u64().unwrap_or(1)).collect(),
        None => vec![],
    };
    let u32_meta = |k: &str| f.meta(k).and_then(MetaValue::as_u64).map(|x| x as u32);
    let unk = u32_meta("tokenizer.ggml.unknown_token_id")
        .or_else(|| u32_meta("tokenizer.ggml.unk_token_id"));
    let flag = |k: &str| f.meta(k).and_then(MetaValue::as_bool);
    let bad = |reason: String| ModelError::Tokenizer {
        path: f.path.clone(),
        reason,
    };
    if model == "llama" {
        let scores = match f.meta("tokenizer.ggml.scores") {
            Some(v) => v
                .as_array()
                .and_then(|a| a.iter().map(MetaValue::as_f64).collect::<Option<Vec<_>>>())
                .ok_or_else(|| bad("tokenizer.ggml.scores: expected an array of numbers".into()))?,
            None => vec![0.0; tokens.len()],
        };
        // llama.cpp and transformers: a SentencePiece vocabulary adds BOS unless told not to
        let when = |on: bool, k: &str| if on { u32_meta(k) } else { None };
        let spec = SpmSpec {
            tokens,
            scores: &scores,
            types: &types,
            merges: (!merges.is_empty()).then_some(merges),
            add_bos: when(
                flag("tokenizer.ggml.add_bos_token").unwrap_or(true),
                "tokenizer.ggml.bos_token_id",
            ),
            add_eos: when(
                flag("tokenizer.ggml.add_eos_token").unwrap_or(false),
                "tokenizer.ggml.eos_token_id",
            ),
            unk,
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix").unwrap_or(true),
        };
        return sentencepiece_bpe(spec).map_err(bad);
    }
    let special_ids = types
        .iter()
        .enumerate()
        .filter(|(_, t)| matches!(t, 3 | 4))
        .map(|(i, _)| i as u32)
        .collect();
    let add_bos = flag("tokenizer.ggml.add_bos_token").unwrap_or(false);
    let spec = BpeSpec {
        tokens,
        merges,
        pre: f
            .meta("tokenizer.ggml.pre")
            .and_then(MetaValue::as_str)
            .unwrap_or("default"),
        special_ids,
        add_bos: if add_bos {
            u32_meta("tokenizer.ggml.bos_token_id")
        } else {
            None
        },
        unk,
    };
    byte_level_bpe(spec).map_err(bad)
}

/// Read a GGUF file: config, dequantized tensors (in `dtype`) under HF names, tokenizer.
pub fn load_gguf(path: &Path, dtype: DType, device: &Device) -> Result<GgufParts> {
    let f = GgufFile::open(path)?;
    let tokens = strings(&f, "tokenizer.ggml.tokens")?.ok_or_else(|| ModelError::MissingField {
        path: path.into(),
        field: "tokenizer.ggml.tokens".into(),
    })?;
    let config = config(&f, Some(tokens.len()))?;
    if tokens.len() != config.vocab_size {
        return Err(ModelError::VocabMismatch {
            path: path.into(),
            tokenizer: tokens.len(),
            model: config.vocab_size,
        });
    }
    let tokenizer = tokenizer(&f, &tokens)?;
    let dims0 = config.layers[0];
    let wanted: Vec<_> = f
        .tensors
        .iter()
        .filter_map(|t| hf_name(&t.name).map(|n| (t, n)))
        .collect();
    let loaded = wanted
        .par_iter()
        .map(|(t, name)| -> Result<(String, Tensor)> {
            let (raw, gdt) = f.raw(t)?;
            let corrupt = |e: candle_core::Error| ModelError::CorruptGguf {
                path: path.into(),
                reason: format!("tensor `{}`: {e}", t.name),
            };
            let q = qtensor_from_ggml(gdt, raw, t.dims.clone(), &Device::Cpu).map_err(corrupt)?;
            let mut w = q.dequantize(&Device::Cpu).map_err(corrupt)?;
            if name.ends_with("q_proj.weight") || name.ends_with("k_proj.weight") {
                let heads = if name.ends_with("q_proj.weight") {
                    dims0.n_heads
                } else {
                    dims0.n_kv_heads
                };
                let rows = t.dims.first().copied().unwrap_or(0);
                if t.dims.len() != 2 || rows != heads * config.head_dim {
                    return Err(ModelError::WrongShape {
                        path: path.into(),
                        tensor: t.name.clone(),
                        expected: vec![heads * config.head_dim, config.hidden_size],
                        got: t.dims.clone(),
                    });
                }
                w = unpermute(&w, heads)?;
            }
            Ok((name.clone(), w.to_dtype(dtype)?.to_device(device)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut tensors = NamedTensors::new(path);
    for (n, t) in loaded {
        tensors.insert(n, t);
    }
    let u32_meta = |k: &str| f.meta(k).and_then(MetaValue::as_u64).map(|x| x as u32);
    let special = SpecialTokens {
        bos: config.bos_token_id,
        eos: config.eos_token_ids.clone(),
        pad: u32_meta("tokenizer.ggml.padding_token_id"),
    };
    let chat_template = f
        .meta("tokenizer.chat_template")
        .and_then(MetaValue::as_str)
        .map(str::to_string);
    Ok(GgufParts {
        config,
        tensors,
        tokenizer,
        special,
        chat_template,
    })
}
