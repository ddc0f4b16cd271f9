//! HF model directories: `config.json`, `model.safetensors` or a sharded
//! `model.safetensors.index.json`, `tokenizer.json`, optional `tokenizer_config.json` (chat
//! template, special token names). Safetensors files are memory-mapped.
//!
//! [`save_hf_dir`] writes a folder transformers loads without warnings: `config.json` (`dtype`
//! and the older `torch_dtype`; GGUF's f32 fields are read as the decimal they stand for, so its
//! 1e-5 is written `1e-5`, not `9.999999747378752e-6`), `generation_config.json`,
//! `model.safetensors` (metadata `{"format": "pt"}` as torch writes it) or, above
//! [`MAX_SHARD_BYTES`], `model-0000k-of-0000n.safetensors` shards with
//! `model.safetensors.index.json` (`metadata.total_size`, `metadata.total_parameters`,
//! `weight_map`), `tokenizer.json`, `tokenizer_config.json` and `special_tokens_map.json`
//! (transformers 5 no longer writes it; older versions and other tools read it). A model with
//! per-layer widths (structurally pruned) also gets a `README.md` saying that transformers cannot
//! load it. [`load_hf_dir`] reads all of this back to the same weights, config, special tokens
//! and chat template. What transformers 5.24 writes and warns about was recorded with its own
//! `save_pretrained` / `from_pretrained` (docs/INTEROP.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::SafeTensors;
use serde_json::{Value, json};
use tokenizers::Tokenizer;

use super::config::LlamaConfig;
use super::error::{ModelError, Result};
use super::llama::Llama;
use super::tokenizer::SpecialTokens;
use super::weights::NamedTensors;

pub struct HfParts {
    pub config: LlamaConfig,
    pub tensors: NamedTensors,
    pub tokenizer: Tokenizer,
    pub special: SpecialTokens,
    pub chat_template: Option<String>,
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))
}

fn read_json(path: &Path) -> Result<Value> {
    serde_json::from_str(&read_text(path)?).map_err(|e| ModelError::InvalidField {
        path: path.into(),
        field: "(json)".into(),
        reason: e.to_string(),
    })
}

/// The safetensors files of a directory: `model.safetensors`, or the shards an index names.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        return Err(ModelError::io(
            &single,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "neither model.safetensors nor model.safetensors.index.json exists",
            ),
        ));
    }
    let v = read_json(&index)?;
    let map = v
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| ModelError::MissingField {
            path: index.clone(),
            field: "weight_map".into(),
        })?;
    let mut files: Vec<String> = map
        .values()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    files.sort();
    files.dedup();
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}

fn candle_dtype(d: safetensors::Dtype) -> Option<DType> {
    match d {
        safetensors::Dtype::F32 => Some(DType::F32),
        safetensors::Dtype::F16 => Some(DType::F16),
        safetensors::Dtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}

/// Read every tensor of `files` (converted to `dtype`, on `device`).
pub fn read_safetensors(
    files: &[PathBuf],
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<NamedTensors> {
    let mut out = NamedTensors::new(dir);
    for file in files {
        let f = std::fs::File::open(file).map_err(|e| ModelError::io(file, e))?;
        let mmap = crate::sys::map_readonly(&f).map_err(|e| ModelError::io(file, e))?;
        let st = SafeTensors::deserialize(&mmap).map_err(|e| ModelError::CorruptSafetensors {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        for (name, view) in st.tensors() {
            let dt = candle_dtype(view.dtype()).ok_or_else(|| ModelError::UnsupportedDtype {
                path: file.clone(),
                tensor: name.clone(),
                dtype: format!("{:?}", view.dtype()),
            })?;
            let t = Tensor::from_raw_buffer(view.data(), dt, view.shape(), device)?;
            out.insert(name, t.to_dtype(dtype)?);
        }
    }
    Ok(out)
}

/// A token named in tokenizer_config.json: a string or `{"content": ...}`.
fn token_name(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

pub fn load_hf_dir(dir: &Path, dtype: DType, device: &Device) -> Result<HfParts> {
    let (config, text) = load_hf_text_parts(dir)?;
    let tensors = read_safetensors(&weight_files(dir)?, dir, dtype, device)?;
    Ok(HfParts {
        config,
        tensors,
        tokenizer: text.tokenizer,
        special: text.special,
        chat_template: text.chat_template,
    })
}

/// What an HF directory says about text: its tokenizer, special tokens and chat template.
pub struct HfText {
    pub tokenizer: Tokenizer,
    pub special: SpecialTokens,
    pub chat_template: Option<String>,
    /// The named special tokens a chat template sees (`bos_token`, `eos_token`, ...), as
    /// transformers passes them: tokenizer_config.json's names, else the ids' tokens.
    pub template_tokens: Vec<(String, String)>,
}

/// transformers' `SPECIAL_TOKENS_ATTRIBUTES`: the special tokens passed to chat templates by name.
const NAMED_TOKENS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// The tokenizer side of an HF directory without reading its weights (tokenization jobs), exactly
/// as [`load_hf_dir`] reads it.
pub fn load_hf_text(dir: &Path) -> Result<HfText> {
    Ok(load_hf_text_parts(dir)?.1)
}

fn load_hf_text_parts(dir: &Path) -> Result<(LlamaConfig, HfText)> {
    let cfg_path = dir.join("config.json");
    let config = LlamaConfig::from_hf_json(&read_text(&cfg_path)?, &cfg_path)?;
    let tok_path = dir.join("tokenizer.json");
    let tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| ModelError::Tokenizer {
        path: tok_path.clone(),
        reason: e.to_string(),
    })?;
    let n_tok = tokenizer.get_vocab_size(true);
    if n_tok > config.vocab_size {
        return Err(ModelError::VocabMismatch {
            path: tok_path,
            tokenizer: n_tok,
            model: config.vocab_size,
        });
    }
    let tc_path = dir.join("tokenizer_config.json");
    let tc = if tc_path.exists() {
        Some(read_json(&tc_path)?)
    } else {
        None
    };
    let id_of = |key: &str| {
        token_name(tc.as_ref().and_then(|t| t.get(key))).and_then(|n| tokenizer.token_to_id(&n))
    };
    let mut eos = config.eos_token_ids.clone();
    if let Some(e) = id_of("eos_token")
        && !eos.contains(&e)
    {
        eos.push(e);
    }
    let special = SpecialTokens {
        bos: config.bos_token_id.or_else(|| id_of("bos_token")),
        eos,
        pad: id_of("pad_token"),
    };
    let chat_template = tc
        .as_ref()
        .and_then(|t| t.get("chat_template"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let template_tokens = NAMED_TOKENS
        .iter()
        .filter_map(|key| {
            let by_id = match *key {
                "bos_token" => special.bos,
                "eos_token" => special.eos.first().copied(),
                "pad_token" => special.pad,
                _ => None,
            };
            let name = token_name(tc.as_ref().and_then(|t| t.get(*key)))
                .or_else(|| by_id.and_then(|i| tokenizer.id_to_token(i)))?;
            Some((key.to_string(), name))
        })
        .collect();
    let text = HfText {
        tokenizer,
        special,
        chat_template,
        template_tokens,
    };
    Ok((config, text))
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    }
}

/// Write `model` as an HF directory (created if needed), sharded above [`MAX_SHARD_BYTES`].
pub fn save_hf_dir(
    model: &Llama,
    tokenizer: &Tokenizer,
    special: &SpecialTokens,
    chat_template: Option<&str>,
    dir: &Path,
) -> Result<()> {
    save_hf_dir_sharded(
        model,
        tokenizer,
        special,
        chat_template,
        dir,
        MAX_SHARD_BYTES,
    )
}

/// [`save_hf_dir`] with another shard size.
pub fn save_hf_dir_sharded(
    model: &Llama,
    tokenizer: &Tokenizer,
    special: &SpecialTokens,
    chat_template: Option<&str>,
    dir: &Path,
    max_shard_bytes: u64,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut cfg = model.config().to_hf_json();
    cfg["dtype"] = json!(dtype_name(model.dtype()));
    cfg["torch_dtype"] = json!(dtype_name(model.dtype()));
    cfg["bos_token_id"] = json!(special.bos);
    super::hf_config::set_eos_token_id(&mut cfg, &special.eos);
    let cfg_path = dir.join("config.json");
    let text =
        serde_json::to_string_pretty(&cfg).map_err(|e| ModelError::InvalidInput(e.to_string()))?;
    std::fs::write(&cfg_path, text).map_err(|e| ModelError::io(&cfg_path, e))?;

    write_json_file(
        &dir.join("generation_config.json"),
        &generation_config(special),
    )?;
    write_weights(model, dir, max_shard_bytes)?;
    if !model.config().is_uniform() {
        let readme = dir.join("README.md");
        std::fs::write(&readme, PRUNED_README).map_err(|e| ModelError::io(&readme, e))?;
    }

    let tok_path = dir.join("tokenizer.json");
    tokenizer
        .save(&tok_path, false)
        .map_err(|e| ModelError::Tokenizer {
            path: tok_path.clone(),
            reason: e.to_string(),
        })?;

    let name = |id: Option<u32>| id.and_then(|i| tokenizer.id_to_token(i));
    let mut tc = json!({ "tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": false });
    if let Some(b) = name(special.bos) {
        tc["bos_token"] = json!(b);
    }
    if let Some(e) = name(special.eos.first().copied()) {
        tc["eos_token"] = json!(e);
    }
    if let Some(p) = name(special.pad) {
        tc["pad_token"] = json!(p);
    }
    if let Some(t) = chat_template {
        tc["chat_template"] = json!(t);
    }
    write_json_file(&dir.join("tokenizer_config.json"), &tc)?;
    let mut map = serde_json::Map::new();
    for (key, id) in [
        ("bos_token", special.bos),
        ("eos_token", special.eos.first().copied()),
        ("pad_token", special.pad),
    ] {
        if let Some(n) = name(id) {
            map.insert(key.into(), json!(n));
        }
    }
    write_json_file(&dir.join("special_tokens_map.json"), &Value::Object(map))
}

/// transformers' `max_shard_size` for the folders rora writes: 5 GB (decimal, as transformers
/// counts), the size of the hub's sharded LLaMA checkpoints and transformers 4's default
/// (transformers 5 moved its default to 50 GB).
pub const MAX_SHARD_BYTES: u64 = 5_000_000_000;

/// The note a structurally pruned model's folder carries.
pub const PRUNED_README: &str = "# A structurally pruned LLaMA model (rora)\n\n\
The layers of this model have different numbers of attention heads, key/value heads or FFN\n\
units: `config.json` lists them per layer in `rora_layer_dims`. rora (and any loader that reads\n\
that list) loads this folder. transformers' `LlamaForCausalLM` cannot: its config has one width\n\
for every layer, so it would build layer 0's shapes everywhere and fail on the first narrower\n\
weight. The uniform `num_attention_heads` / `num_key_value_heads` / `intermediate_size` in\n\
`config.json` are layer 0's, kept so other tools can read the file.\n";

fn write_json_file(path: &Path, v: &Value) -> Result<()> {
    let mut text =
        serde_json::to_string_pretty(v).map_err(|e| ModelError::InvalidInput(e.to_string()))?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| ModelError::io(path, e))
}

/// What transformers derives from the model config when a folder has no generation config
/// (`_from_model_config`), written out so loaders do not have to.
fn generation_config(special: &SpecialTokens) -> Value {
    let mut g = json!({ "_from_model_config": true });
    if let Some(b) = special.bos {
        g["bos_token_id"] = json!(b);
    }
    super::hf_config::set_eos_token_id(&mut g, &special.eos);
    if let Some(p) = special.pad {
        g["pad_token_id"] = json!(p);
    }
    g
}

/// The weights: one `model.safetensors`, or shards of at most `max_shard_bytes` (a tensor larger
/// than that gets a shard of its own) named and indexed as transformers names them. Tensors go
/// in name order.
fn write_weights(model: &Llama, dir: &Path, max_shard_bytes: u64) -> Result<()> {
    let mut named = model.named_tensors();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let bytes = |t: &Tensor| (t.elem_count() * t.dtype().size_in_bytes()) as u64;
    let mut shards: Vec<Vec<(String, Tensor)>> = vec![Vec::new()];
    let mut size = 0u64;
    for (name, t) in named {
        let b = bytes(&t);
        if size + b > max_shard_bytes && shards.last().is_some_and(|s| !s.is_empty()) {
            shards.push(Vec::new());
            size = 0;
        }
        size += b;
        if let Some(s) = shards.last_mut() {
            s.push((name, t));
        }
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let write = |tensors: &[(String, Tensor)], path: &Path| -> Result<()> {
        safetensors::serialize_to_file(
            tensors.iter().map(|(k, t)| (k.as_str(), t)),
            Some(metadata.clone()),
            path,
        )
        .map_err(|e| ModelError::io(path, std::io::Error::other(e.to_string())))
    };
    if shards.len() == 1 {
        return write(&shards[0], &dir.join("model.safetensors"));
    }
    let n = shards.len();
    let mut weight_map = serde_json::Map::new();
    let (mut total_size, mut total_parameters) = (0u64, 0u64);
    for (i, shard) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        write(shard, &dir.join(&file))?;
        for (name, t) in shard {
            weight_map.insert(name.clone(), json!(file));
            total_size += bytes(t);
            total_parameters += t.elem_count() as u64;
        }
    }
    let index = json!({
        "metadata": { "total_parameters": total_parameters, "total_size": total_size },
        "weight_map": weight_map,
    });
    write_json_file(&dir.join("model.safetensors.index.json"), &index)
}
