//! Model dimensions read without loading weights: a local HF directory's `config.json` or a local
//! GGUF file's metadata (header only). The model stage (`crate::stages::model::model_config`) uses
//! them so the semantic pass can check ranks and layer indices against real dimensions.

use std::path::Path;

use crate::model::config::{LlamaConfig, UniformShape};

/// Vocabulary of the built-in byte-level tokenizer of `random` models (3 specials + 256 bytes).
pub const RANDOM_VOCAB: usize = crate::model::random::BYTE_VOCAB;

/// A check-time config read from a file's header: only the dimensions matter here.
fn uniform(
    vocab: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    ffn: usize,
    head_dim: usize,
) -> LlamaConfig {
    LlamaConfig {
        head_dim,
        ..LlamaConfig::uniform(UniformShape {
            vocab,
            hidden,
            layers,
            heads,
            kv_heads,
            ffn,
        })
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Errors from other crates may carry a backtrace after the first line.
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

/// The dimensions in an HF `config.json`; `Ok(None)` when the file is not there.
pub fn hf_config(path: &Path) -> Result<Option<LlamaConfig>, String> {
    const KIND: &str = "JSON";
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not readable as {}: {}",
            file_name(path),
            KIND,
            first_line(&e.to_string())
        )
    })?;
    let get = |k: &str| v.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
    let need =
        |k: &str| get(k).ok_or_else(|| format!("{}: missing integer field `{k}`", file_name(path)));
    let hidden = need("hidden_size")?;
    let heads = need("num_attention_heads")?;
    let kv = get("num_key_value_heads").unwrap_or(heads);
    let head_dim = get("head_dim").unwrap_or(hidden / heads.max(1));
    Ok(Some(uniform(
        get("vocab_size").unwrap_or(0),
        hidden,
        need("num_hidden_layers")?,
        heads,
        kv,
        need("intermediate_size")?,
        head_dim,
    )))
}

/// The dimensions in a GGUF file's header; `Ok(None)` when the file is not there.
pub fn gguf_config(path: &Path) -> Result<Option<LlamaConfig>, String> {
    const KIND: &str = "GGUF";
    use candle_core::quantized::gguf_file::Content;
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(None);
    };
    let c = Content::read(&mut f).map_err(|e| {
        format!(
            "{} is not readable as {}: {}",
            file_name(path),
            KIND,
            first_line(&e.to_string())
        )
    })?;
    let arch = c
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_else(|| "llama".into());
    let get = |k: &str| -> Result<usize, String> {
        c.metadata
            .get(&format!("{arch}.{k}"))
            .and_then(|v| {
                v.to_u32()
                    .ok()
                    .map(|x| x as usize)
                    .or_else(|| v.to_u64().ok().map(|x| x as usize))
            })
            .ok_or_else(|| format!("{}: missing metadata `{arch}.{k}`", file_name(path)))
    };
    let hidden = get("embedding_length")?;
    let heads = get("attention.head_count")?;
    let kv = get("attention.head_count_kv").unwrap_or(heads);
    Ok(Some(uniform(
        0,
        hidden,
        get("block_count")?,
        heads,
        kv,
        get("feed_forward_length")?,
        hidden / heads.max(1),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_dir_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"hidden_size":2048,"num_attention_heads":16,"num_key_value_heads":16,"num_hidden_layers":24,"intermediate_size":5504}"#).unwrap();
        let c = hf_config(&path).unwrap().unwrap();
        assert_eq!(
            (c.n_layers(), c.proj_shape(3, "down_proj")),
            (24, Some((2048, 5504)))
        );
        assert_eq!(hf_config(&dir.path().join("absent.json")), Ok(None));
    }

    #[test]
    fn smollm2_gguf_header_if_present() {
        let dir = std::env::var("RORA_SHARED_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared").into());
        let f = Path::new(&dir).join("assets/models/smollm2-135m-instruct-q4_1.gguf");
        if !f.exists() {
            eprintln!("SKIP: {} not found (set RORA_SHARED_DIR)", f.display());
            return;
        }
        let c = gguf_config(&f).unwrap().unwrap();
        // ASSETS.md: 30 layers, hidden 576, FFN 1536, 9 heads, 3 KV heads.
        assert_eq!(
            (
                c.n_layers(),
                c.hidden_size,
                c.layers[0].intermediate_size,
                c.layers[0].n_kv_heads
            ),
            (30, 576, 1536, 3)
        );
    }
}
