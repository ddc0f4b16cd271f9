//! LLaMA-family models: runtime config, a trainable forward pass, loaders and tokenizers.
//!
//! ```text
//! GGUF file ──(gguf_file: parse, gguf: dequantize + un-permute Q/K + tokenizer)──┐
//! HF dir ─────(hf_config: config.json, hf: safetensors + tokenizer.json)─────────┼─> NamedTensors (HF names)
//! random:<preset> ──(random: seeded init, tokenizer: byte vocab)─────────────────┘        │
//!                                              Llama::from_tensors (shape checks) <──────┘
//! ```
//! [`load`] is the one entry point; [`Llama`] implements `crate::lm::{CausalLm, IncrementalLm}`.

pub mod adaptable;
pub mod attention;
pub mod block;
pub mod chat;
pub mod config;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod gguf_file;
pub mod hf;
pub mod hf_config;
pub mod inspect;
pub mod llama;
pub mod ops;
pub mod packed;
pub mod random;
pub mod rope;
pub mod source;
pub mod tokenizer;
pub mod weights;

#[cfg(test)]
pub(crate) mod tests;

pub use error::ModelError;
pub use llama::{KvCache, Llama};
pub use random::RandomSpec;
pub use source::{LoadOptions, LoadedModel, ModelSource, SpecialTokens, load};
