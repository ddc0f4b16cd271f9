//! Shapes of well-known LLaMA-family models, for the memory estimate when a hub model's
//! `config.json` is not on this machine, and for `rora bench train --preset`.
//!
//! Values are those of each model's published `config.json` (vocab_size, hidden_size,
//! num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size,
//! tie_word_embeddings, rope_theta).

use crate::model::config::{LlamaConfig, UniformShape};

/// `(name, hub ids, vocab, hidden, layers, heads, kv heads, ffn, tied, rope theta)`.
type Shape = (
    &'static str,
    &'static [&'static str],
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    bool,
    f64,
);

const SHAPES: [Shape; 5] = [
    (
        "llama-8b",
        &[
            "meta-llama/Meta-Llama-3-8B",
            "meta-llama/Meta-Llama-3-8B-Instruct",
            "meta-llama/Llama-3.1-8B",
            "meta-llama/Llama-3.1-8B-Instruct",
        ],
        128_256,
        4096,
        32,
        32,
        8,
        14_336,
        false,
        500_000.0,
    ),
    (
        "llama-1b",
        &[
            "meta-llama/Llama-3.2-1B",
            "meta-llama/Llama-3.2-1B-Instruct",
        ],
        128_256,
        2048,
        16,
        32,
        8,
        8192,
        true,
        500_000.0,
    ),
    (
        "llama-7b",
        &["huggyllama/llama-7b", "meta-llama/Llama-2-7b-hf"],
        32_000,
        4096,
        32,
        32,
        32,
        11_008,
        false,
        10_000.0,
    ),
    (
        "sheared-llama-1.3b",
        &["princeton-nlp/Sheared-LLaMA-1.3B"],
        32_000,
        2048,
        24,
        16,
        16,
        5504,
        false,
        10_000.0,
    ),
    (
        "smollm2-135m",
        &[
            "HuggingFaceTB/SmolLM2-135M",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
        ],
        49_152,
        576,
        30,
        9,
        3,
        1536,
        true,
        100_000.0,
    ),
];

fn config(s: &Shape) -> LlamaConfig {
    let (_, _, vocab, hidden, layers, heads, kv_heads, ffn, tied, theta) = *s;
    LlamaConfig {
        rope_theta: theta,
        max_position_embeddings: 8192,
        tie_word_embeddings: tied,
        bos_token_id: Some(1),
        eos_token_ids: vec![2],
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

/// The shape named `name` (`llama-8b`, `llama-1b`, `llama-7b`, `sheared-llama-1.3b`, `smollm2-135m`).
pub fn by_name(name: &str) -> Option<LlamaConfig> {
    SHAPES.iter().find(|s| s.0 == name).map(config)
}

/// The shape of a hub model id, when it is one of the known ones.
pub fn by_hub_id(id: &str) -> Option<LlamaConfig> {
    SHAPES.iter().find(|s| s.1.contains(&id)).map(config)
}

/// The names [`by_name`] knows.
pub fn names() -> Vec<&'static str> {
    SHAPES.iter().map(|s| s.0).collect()
}
