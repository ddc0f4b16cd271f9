//! HF directory save -> load is exact; config.json dialects; per-layer dims; random seeds.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::{ids, max_abs_diff, spec};
use crate::lm::CausalLm;
use crate::model::config::{LayerDims, LlamaConfig};
use crate::model::{LoadOptions, ModelSource, RandomSpec, load};

fn ones(t: usize) -> Tensor {
    Tensor::ones((1, t), DType::U32, &Device::Cpu).unwrap()
}

fn assert_same_model(a: &crate::model::LoadedModel, b: &crate::model::LoadedModel) {
    assert_eq!(a.config, b.config);
    assert_eq!(a.special, b.special);
    assert_eq!(a.chat_template, b.chat_template);
    let (ta, tb) = (a.model.named_tensors(), b.model.named_tensors());
    assert_eq!(ta.len(), tb.len());
    for ((na, xa), (nb, xb)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert_eq!(max_abs_diff(xa, xb), 0.0, "{na} differs");
    }
    let text = "<|im_start|>user\nround trip 123<|im_end|>";
    assert_eq!(
        a.tokenizer.encode(text, true).unwrap().get_ids(),
        b.tokenizer.encode(text, true).unwrap().get_ids()
    );
    let row: Vec<u32> = (0..9).map(|i| i * 25 + 1).collect();
    let la = a.model.forward(&ids(&[&row]), &ones(9)).unwrap();
    let lb = b.model.forward(&ids(&[&row]), &ones(9)).unwrap();
    assert_eq!(max_abs_diff(&la, &lb), 0.0);
}

#[test]
fn hf_save_load_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    for (i, tied) in [true, false].into_iter().enumerate() {
        let mut s = spec(31);
        s.config.tie_word_embeddings = tied;
        let a = load(&ModelSource::Random(s), &LoadOptions::default()).unwrap();
        let d = dir.path().join(format!("m{i}"));
        a.save_hf_dir(&d).unwrap();
        let b = load(&ModelSource::HfDir(d), &LoadOptions::default()).unwrap();
        assert_same_model(&a, &b);
    }
}

#[test]
fn gguf_to_hf_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let a = load(
        &ModelSource::Gguf(super::fixture("tiny-random-llama.gguf")),
        &LoadOptions::default(),
    )
    .unwrap();
    a.save_hf_dir(dir.path()).unwrap();
    let b = load(
        &ModelSource::parse(dir.path().to_str().unwrap()).unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_same_model(&a, &b);
}

#[test]
fn per_layer_dims_round_trip() {
    let mut s = spec(32);
    s.config.layers = vec![
        LayerDims {
            n_heads: 4,
            n_kv_heads: 2,
            intermediate_size: 128,
        },
        LayerDims {
            n_heads: 2,
            n_kv_heads: 1,
            intermediate_size: 40,
        },
    ];
    let a = load(&ModelSource::Random(s), &LoadOptions::default()).unwrap();
    assert_eq!(a.model.linears()[7 + 1].1.shape(), (16, 64)); // layer 1 k_proj: 1 KV head * 16
    let dir = tempfile::tempdir().unwrap();
    a.save_hf_dir(dir.path()).unwrap();
    let cfg_text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(cfg_text.contains("rora_layer_dims"));
    let note = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    assert!(
        note.contains("transformers' `LlamaForCausalLM` cannot"),
        "{note}"
    );
    let b = load(
        &ModelSource::HfDir(dir.path().into()),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_same_model(&a, &b);
}

#[test]
fn config_json_dialects_agree() {
    let classic = r#"{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":259,"rms_norm_eps":1e-5,
        "rope_theta":500000.0,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,
        "high_freq_factor":4.0,"original_max_position_embeddings":8192},"max_position_embeddings":131072,
        "tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":[2,0]}"#;
    let v5 = r#"{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":259,"rms_norm_eps":1e-5,
        "rope_parameters":{"rope_theta":500000.0,"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,
        "high_freq_factor":4.0,"original_max_position_embeddings":8192},"max_position_embeddings":131072,
        "tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":[2,0]}"#;
    let p = Path::new("config.json");
    let a = LlamaConfig::from_hf_json(classic, p).unwrap();
    let b = LlamaConfig::from_hf_json(v5, p).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.rope_theta, 500_000.0);
    assert_eq!(a.rope_scaling.as_ref().unwrap().factor, 8.0);
    assert_eq!(a.eos_token_ids, vec![2, 0]);
    assert_eq!(a.head_dim, 16);
    let back = LlamaConfig::from_hf_json(&a.to_hf_json().to_string(), p).unwrap();
    assert_eq!(a, back);
}

#[test]
fn same_seed_same_weights_other_seed_different() {
    let a = load(
        &ModelSource::parse("random:tiny,seed=5").unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    let b = load(
        &ModelSource::Random(RandomSpec::tiny(5)),
        &LoadOptions::default(),
    )
    .unwrap();
    let c = load(
        &ModelSource::Random(RandomSpec::tiny(6)),
        &LoadOptions::default(),
    )
    .unwrap();
    let w = |m: &crate::model::LoadedModel| m.model.linears()[0].1.weight().clone();
    assert_eq!(max_abs_diff(&w(&a), &w(&b)), 0.0);
    assert!(max_abs_diff(&w(&a), &w(&c)) > 0.0);
    let std: f32 = w(&a)
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .sqrt()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!((std - 0.02).abs() < 0.002, "weight std {std}");
    assert_eq!(a.tokenizer.get_vocab_size(true), 259);
}

#[test]
fn bf16_base_runs_and_stays_close_to_f32() {
    let s = spec(33);
    let a = load(&ModelSource::Random(s.clone()), &LoadOptions::default()).unwrap();
    let b = load(
        &ModelSource::Random(s),
        &LoadOptions {
            dtype: DType::BF16,
            device: Device::Cpu,
        },
    )
    .unwrap();
    assert_eq!(b.model.linears()[0].1.weight().dtype(), DType::BF16);
    let row: Vec<u32> = (0..8).map(|i| i * 31 + 2).collect();
    let la = a.model.forward(&ids(&[&row]), &ones(8)).unwrap();
    let lb = b.model.forward(&ids(&[&row]), &ones(8)).unwrap();
    assert_eq!(lb.dtype(), DType::F32);
    // bf16 keeps 8 mantissa bits: weights and activations round at ~0.4% each.
    let rel = max_abs_diff(&la, &lb) / max_abs_diff(&la, &la.zeros_like().unwrap());
    assert!(
        rel < 0.05,
        "bf16 vs f32 logits differ by {rel} (relative to the largest logit)"
    );
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The `__metadata__` of a safetensors file's header.
fn st_metadata(path: &Path) -> Option<std::collections::HashMap<String, String>> {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    meta.metadata().clone()
}

// The files transformers 5.24's save_pretrained writes (recorded with it: docs/INTEROP.md), plus
// special_tokens_map.json for older readers; a uniform model gets no pruning note.
#[test]
fn hf_folder_has_the_files_and_keys_transformers_writes() {
    let dir = tempfile::tempdir().unwrap();
    let a = load(&ModelSource::Random(spec(33)), &LoadOptions::default()).unwrap();
    a.save_hf_dir(dir.path()).unwrap();
    let cfg = json(&dir.path().join("config.json"));
    assert_eq!(
        (cfg["dtype"].as_str(), cfg["torch_dtype"].as_str()),
        (Some("float32"), Some("float32"))
    );
    let gen_cfg = json(&dir.path().join("generation_config.json"));
    assert_eq!(gen_cfg["_from_model_config"], true);
    assert_eq!(gen_cfg["bos_token_id"], cfg["bos_token_id"]);
    assert_eq!(gen_cfg["eos_token_id"], cfg["eos_token_id"]);
    let map = json(&dir.path().join("special_tokens_map.json"));
    let tc = json(&dir.path().join("tokenizer_config.json"));
    for k in ["bos_token", "eos_token"] {
        assert!(map[k].is_string(), "{k}: {map}");
        assert_eq!(map[k], tc[k], "{k}");
    }
    let meta = st_metadata(&dir.path().join("model.safetensors")).unwrap();
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    assert!(!dir.path().join("README.md").exists());
    assert!(!dir.path().join("model.safetensors.index.json").exists());
}

// Above the shard size the weights go to model-0000k-of-0000n.safetensors with an index in
// transformers' layout (metadata.total_size / total_parameters, weight_map), and load back exactly.
#[test]
fn sharded_folders_index_every_tensor_and_load_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let a = load(&ModelSource::Random(spec(34)), &LoadOptions::default()).unwrap();
    let named = a.model.named_tensors();
    let total: u64 = named
        .iter()
        .map(|(_, t)| (t.elem_count() * t.dtype().size_in_bytes()) as u64)
        .sum();
    let largest = named
        .iter()
        .map(|(_, t)| (t.elem_count() * t.dtype().size_in_bytes()) as u64)
        .max()
        .unwrap();
    crate::model::hf::save_hf_dir_sharded(
        &a.model,
        &a.tokenizer,
        &a.special,
        a.chat_template.as_deref(),
        dir.path(),
        largest,
    )
    .unwrap();
    assert!(!dir.path().join("model.safetensors").exists());
    let index = json(&dir.path().join("model.safetensors.index.json"));
    assert_eq!(index["metadata"]["total_size"].as_u64(), Some(total));
    let params: usize = named.iter().map(|(_, t)| t.elem_count()).sum();
    assert_eq!(
        index["metadata"]["total_parameters"].as_u64(),
        Some(params as u64)
    );
    let map = index["weight_map"].as_object().unwrap();
    assert_eq!(map.len(), named.len());
    let files: std::collections::BTreeSet<&str> =
        map.values().map(|v| v.as_str().unwrap()).collect();
    let n = files.len();
    assert!(n > 2, "{files:?}");
    for (i, f) in files.iter().enumerate() {
        assert_eq!(*f, format!("model-{:05}-of-{n:05}.safetensors", i + 1));
        let path = dir.path().join(f);
        assert!(
            std::fs::metadata(&path).unwrap().len() <= largest + 4096,
            "{f}"
        );
        assert_eq!(st_metadata(&path).unwrap()["format"], "pt");
    }
    let b = load(
        &ModelSource::HfDir(dir.path().into()),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_same_model(&a, &b);
}
