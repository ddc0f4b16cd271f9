//! GGUF files written here from a random model (candle's GGUF writer, llama.cpp's Q/K row
//! permutation applied as convert_hf_to_gguf.py does) load back to the same model: exactly for
//! F32, within each quant type's rounding error otherwise. A wrong un-permutation would give
//! a relative error near sqrt(2), far above every bound.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use super::{ids, max_abs_diff};
use crate::lm::CausalLm;
use crate::model::gguf::permute;
use crate::model::tokenizer::byte_vocab;
use crate::model::{LoadOptions, LoadedModel, ModelSource, RandomSpec, load};

/// hidden 256 and FFN 256 so every row length is a multiple of the K-quant block (256).
pub fn quant_spec(tied: bool) -> RandomSpec {
    let mut s = RandomSpec::uniform(256, 1, 4, 2, 256, 41);
    s.std = 0.2;
    s.config.tie_word_embeddings = tied;
    s
}

fn gguf_name(hf: &str) -> String {
    let map = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = map.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (i, part) = rest.split_once('.').unwrap();
    let g = match part {
        "input_layernorm.weight" => "attn_norm",
        "post_attention_layernorm.weight" => "ffn_norm",
        "self_attn.q_proj.weight" => "attn_q",
        "self_attn.k_proj.weight" => "attn_k",
        "self_attn.v_proj.weight" => "attn_v",
        "self_attn.o_proj.weight" => "attn_output",
        "mlp.gate_proj.weight" => "ffn_gate",
        "mlp.up_proj.weight" => "ffn_up",
        "mlp.down_proj.weight" => "ffn_down",
        other => panic!("{other}"),
    };
    format!("blk.{i}.{g}.weight")
}

/// Write `m` as a llama.cpp-style GGUF, matrices in `kind`, norms in F32.
pub fn write_gguf(m: &LoadedModel, kind: GgmlDType, path: &Path, extra: &[(&str, Value)]) {
    let c = &m.config;
    let d = c.layers[0];
    let mut qts = Vec::new();
    for (name, t) in m.model.named_tensors() {
        let t = if name.ends_with("q_proj.weight") {
            permute(&t, d.n_heads).unwrap()
        } else if name.ends_with("k_proj.weight") {
            permute(&t, d.n_kv_heads).unwrap()
        } else {
            t
        };
        let k = if t.rank() == 1 { GgmlDType::F32 } else { kind };
        qts.push((gguf_name(&name), QTensor::quantize(&t, k).unwrap()));
    }
    let tokens = byte_vocab();
    let types: Vec<Value> = (0..tokens.len())
        .map(|i| Value::I32(if i < 3 { 3 } else { 1 }))
        .collect();
    let mut meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", Value::U32(c.n_layers() as u32)),
        ("llama.context_length", Value::U32(256)),
        ("llama.embedding_length", Value::U32(c.hidden_size as u32)),
        (
            "llama.feed_forward_length",
            Value::U32(d.intermediate_size as u32),
        ),
        ("llama.attention.head_count", Value::U32(d.n_heads as u32)),
        (
            "llama.attention.head_count_kv",
            Value::U32(d.n_kv_heads as u32),
        ),
        ("llama.rope.freq_base", Value::F32(c.rope_theta as f32)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(c.rms_norm_eps as f32),
        ),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("default".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
    ];
    for (k, v) in extra {
        meta.retain(|(m, _)| m != k);
        meta.push((*k, v.clone()));
    }
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = qts.iter().map(|(n, q)| (n.as_str(), q)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &meta_refs, &t_refs).unwrap();
}

pub fn random_loaded(tied: bool) -> LoadedModel {
    load(
        &ModelSource::Random(quant_spec(tied)),
        &LoadOptions::default(),
    )
    .unwrap()
}

fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let n = |t: &Tensor| -> f32 {
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    n(&(a - b).unwrap()) / n(b)
}

fn check(kind: GgmlDType, weight_bound: f32, tied: bool, dir: &Path) {
    let orig = random_loaded(tied);
    let path: PathBuf = dir.join(format!("{kind:?}-{tied}.gguf"));
    write_gguf(&orig, kind, &path, &[]);
    let got = load(&ModelSource::Gguf(path), &LoadOptions::default()).unwrap();
    assert_eq!(got.config.tie_word_embeddings, tied);
    assert_eq!(got.config.layers, orig.config.layers);
    for ((na, a), (nb, b)) in got
        .model
        .named_tensors()
        .iter()
        .zip(orig.model.named_tensors().iter())
    {
        assert_eq!(na, nb);
        let e = rel_err(a, b);
        assert!(
            e <= weight_bound,
            "{kind:?}: {na} relative error {e} > {weight_bound}"
        );
    }
    let row: Vec<u32> = (0..12).map(|i| i * 21 + 4).collect();
    let mask = Tensor::ones((1, 12), DType::U32, &Device::Cpu).unwrap();
    let la = got.model.forward(&ids(&[&row]), &mask).unwrap();
    let lb = orig.model.forward(&ids(&[&row]), &mask).unwrap();
    if kind == GgmlDType::F32 {
        assert_eq!(max_abs_diff(&la, &lb), 0.0);
    }
    assert!(
        rel_err(&la, &lb) < 4.0 * weight_bound + 1e-6,
        "{kind:?}: logits relative error {}",
        rel_err(&la, &lb)
    );
}

#[test]
fn gguf_dtypes_dequantize_and_unpermute() {
    let dir = tempfile::tempdir().unwrap();
    // Bounds: a few times each format's RMS rounding error on gaussian weights.
    let cases = [
        (GgmlDType::F32, 0.0, true),
        (GgmlDType::F32, 0.0, false),
        (GgmlDType::F16, 1e-3, true),
        (GgmlDType::BF16, 8e-3, true),
        (GgmlDType::Q8_0, 1e-2, false),
        (GgmlDType::Q4_0, 0.15, true),
        (GgmlDType::Q4_1, 0.15, true),
        (GgmlDType::Q4K, 0.15, true),
        (GgmlDType::Q5K, 0.08, true),
        (GgmlDType::Q6K, 0.04, true),
    ];
    for (kind, bound, tied) in cases {
        check(kind, bound, tied, dir.path());
    }
}
