//! LLaMA-family models: runtime config, forward pass, loaders.
pub mod config;
