//! A GGUF whose tokenizer is a SentencePiece vocabulary (`tokenizer.ggml.model = llama`, as in
//! LLaMA-2-family GGUFs) through the CLI: `model info` and `model generate` read it, and a
//! pipeline loads it, saves it as an HF folder whose tokenizer.json encodes exactly as the
//! reference `tests/fixtures/spm/tokenizer.json`, tokenizes data with it and trains.
//! The file is written here with candle's GGUF writer (random f32 weights, one layer).

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::support::{output_dir, rora, text};

/// `tests/fixtures/spm/vocab.json` (`tests/interop/write_spm_gguf.py`'s vocabulary): `<unk>`,
/// `<s>`, `</s>`, the 256 byte tokens, scored pieces, then the user-defined `<|im_start|>`.
fn vocab() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let path = crate::root().join("tests/fixtures/spm/vocab.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let list = |k: &str| v[k].as_array().unwrap().clone();
    (
        list("tokens")
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect(),
        list("scores")
            .iter()
            .map(|s| s.as_f64().unwrap() as f32)
            .collect(),
        list("types")
            .iter()
            .map(|t| t.as_i64().unwrap() as i32)
            .collect(),
    )
}

fn weights(shape: (usize, usize), seed: usize) -> QTensor {
    let n = shape.0 * shape.1;
    let v: Vec<f32> = (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 1000.0 - 0.5) * 0.1)
        .collect();
    let t = Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
    QTensor::quantize(&t, GgmlDType::F32).unwrap()
}

fn ones(n: usize) -> QTensor {
    QTensor::quantize(
        &Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::F32,
    )
    .unwrap()
}

/// A one-layer LLaMA (hidden 32, 2 heads, FFN 64, tied embeddings) with the SentencePiece vocabulary.
fn write_spm_gguf(path: &Path) {
    let (tokens, scores, types) = vocab();
    let (v, h, f) = (tokens.len(), 32, 64);
    let tensors: Vec<(&str, QTensor)> = vec![
        ("token_embd.weight", weights((v, h), 1)),
        ("output_norm.weight", ones(h)),
        ("blk.0.attn_norm.weight", ones(h)),
        ("blk.0.ffn_norm.weight", ones(h)),
        ("blk.0.attn_q.weight", weights((h, h), 2)),
        ("blk.0.attn_k.weight", weights((h, h), 3)),
        ("blk.0.attn_v.weight", weights((h, h), 4)),
        ("blk.0.attn_output.weight", weights((h, h), 5)),
        ("blk.0.ffn_gate.weight", weights((f, h), 6)),
        ("blk.0.ffn_up.weight", weights((f, h), 7)),
        ("blk.0.ffn_down.weight", weights((h, f), 8)),
    ];
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", Value::U32(1)),
        ("llama.context_length", Value::U32(512)),
        ("llama.embedding_length", Value::U32(h as u32)),
        ("llama.feed_forward_length", Value::U32(f as u32)),
        ("llama.attention.head_count", Value::U32(2)),
        ("llama.attention.head_count_kv", Value::U32(2)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("tokenizer.ggml.model", Value::String("llama".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.scores",
            Value::Array(scores.into_iter().map(Value::F32).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
        ("tokenizer.ggml.add_eos_token", Value::Bool(false)),
    ];
    let meta: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (*k, t)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &meta, &tensors).unwrap();
}

#[test]
fn a_sentencepiece_gguf_runs_through_the_cli_and_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let gguf = dir.path().join("spm.gguf");
    write_spm_gguf(&gguf);
    let o = rora(&["model", "info", gguf.to_str().unwrap()], &cache);
    assert!(o.status.success(), "{}", text(&o));
    let info = text(&o);
    assert!(info.contains("289"), "{info}");
    let o = rora(
        &[
            "model",
            "generate",
            gguf.to_str().unwrap(),
            "--prompt",
            "the cat",
            "--max-new",
            "4",
        ],
        &cache,
    );
    assert!(o.status.success(), "{}", text(&o));

    let data = crate::root().join("datasets/commonsense/boolq.train.jsonl");
    let p = dir.path().join("spm.kdl");
    std::fs::write(
        &p,
        format!(
            r#"
model "spm" {{
    gguf "{gguf}"
    dtype "f32"
}}
data "d" {{
    files "{data}"
    max-len 64
    limit 8
}}
adapter "ad" model="spm" {{
    rank 2
    alpha 4
    targets "q_proj" "v_proj"
}}
train "ft" adapter="ad" data="d" {{
    steps 1
    batch 2
}}
"#,
            gguf = gguf.display(),
            data = data.display()
        ),
    )
    .unwrap();
    let o = rora(&["run", p.to_str().unwrap()], &cache);
    assert!(o.status.success(), "{}", text(&o));
    // the model entry's HF folder: its tokenizer.json encodes and decodes as the reference
    let saved = tokenizers::Tokenizer::from_file(
        output_dir(&cache, "spm", &p).join("model/tokenizer.json"),
    )
    .unwrap();
    let reference =
        tokenizers::Tokenizer::from_file(crate::root().join("tests/fixtures/spm/tokenizer.json"))
            .unwrap();
    for t in [
        "Hello world",
        " the cat",
        "<|im_start|>the",
        "über 日本",
        "",
        "\n",
    ] {
        let (a, b) = (
            saved.encode(t, true).unwrap(),
            reference.encode(t, true).unwrap(),
        );
        assert_eq!(a.get_ids(), b.get_ids(), "{t:?}");
        assert_eq!(
            saved.decode(a.get_ids(), true).unwrap(),
            reference.decode(b.get_ids(), true).unwrap()
        );
    }
}
