//! Our LLaMA against candle-transformers' llama (an independent implementation of the HF layout)
//! on the same random weights: last-position logits within 1e-4 in f32.

use std::collections::HashMap;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_transformers::models::llama as reference;

use super::{ids, max_abs_diff, spec};
use crate::lm::CausalLm;
use crate::model::config::Llama3RopeScaling;
use crate::model::llama::Llama;
use crate::model::random::{RandomSpec, random_tensors};

fn compare(s: &RandomSpec) {
    let (cfg, w) = random_tensors(s, &Device::Cpu).unwrap();
    let map: HashMap<String, Tensor> = w.tensors.clone();
    let d = cfg.layers[0];
    let rope_scaling = cfg
        .rope_scaling
        .as_ref()
        .map(|r| reference::Llama3RopeConfig {
            factor: r.factor as f32,
            low_freq_factor: r.low_freq_factor as f32,
            high_freq_factor: r.high_freq_factor as f32,
            original_max_position_embeddings: r.original_max_position_embeddings,
            rope_type: reference::Llama3RopeType::Llama3,
        });
    let rc = reference::Config {
        hidden_size: cfg.hidden_size,
        intermediate_size: d.intermediate_size,
        vocab_size: cfg.vocab_size,
        num_hidden_layers: cfg.n_layers(),
        num_attention_heads: d.n_heads,
        num_key_value_heads: d.n_kv_heads,
        use_flash_attn: false,
        rms_norm_eps: cfg.rms_norm_eps,
        rope_theta: cfg.rope_theta as f32,
        bos_token_id: None,
        eos_token_id: None,
        rope_scaling,
        max_position_embeddings: 64,
        tie_word_embeddings: cfg.tie_word_embeddings,
    };
    let vb = candle_nn::VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    let theirs = reference::Llama::load(vb, &rc).unwrap();
    let ours = Llama::from_tensors(cfg, w, DType::F32).unwrap();

    let row: Vec<u32> = (0..23).map(|i| (i * 37 + 5) % 259).collect();
    let x = ids(&[&row]);
    let mut cache = reference::Cache::new(false, DType::F32, &rc, &Device::Cpu).unwrap();
    let want = theirs.forward(&x, 0, &mut cache).unwrap();
    let mask = Tensor::ones((1, row.len()), DType::U32, &Device::Cpu).unwrap();
    let got = ours
        .forward(&x, &mask)
        .unwrap()
        .i((.., row.len() - 1))
        .unwrap();
    let diff = max_abs_diff(&got, &want);
    let scale = max_abs_diff(&want, &want.zeros_like().unwrap());
    assert!(scale > 0.5, "logits too flat to compare ({scale})");
    assert!(diff < 1e-4, "max |ours - candle-transformers| = {diff}");
}

#[test]
fn matches_candle_transformers_gqa_tied() {
    compare(&spec(1));
}

#[test]
fn matches_candle_transformers_untied_mha_theta() {
    let mut s = RandomSpec::uniform(48, 2, 3, 3, 96, 7);
    s.std = 0.2;
    s.config.tie_word_embeddings = false;
    s.config.rope_theta = 500_000.0;
    compare(&s);
}

#[test]
fn matches_candle_transformers_llama3_rope_scaling() {
    let mut s = spec(3);
    s.config.rope_theta = 500_000.0;
    // A short original context so every branch of the scaling (kept, divided, smoothed) is hit.
    s.config.rope_scaling = Some(Llama3RopeScaling {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 64,
    });
    compare(&s);
}
