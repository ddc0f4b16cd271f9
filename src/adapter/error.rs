//! Errors of the adapter module. Each names the module path, file, field or tensor at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("invalid adapter config: {field}: {msg}")]
    InvalidConfig { field: &'static str, msg: String },

    #[error("invalid regex {pattern:?} in {field}: {source}")]
    BadRegex {
        field: &'static str,
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },

    #[error("adapter targets ({targets}) match no module of the model; modules: {available}")]
    NoTargetMatched { targets: String, available: String },

    #[error("{module}: rank {rank} exceeds min(out, in) = {max} of this {out}x{inp} layer")]
    RankTooLarge {
        module: String,
        rank: usize,
        max: usize,
        out: usize,
        inp: usize,
    },

    #[error(
        "{module}: a {method} adapter has no place here: series adapters sit before gate_proj / up_proj or after down_proj (LLM-Adapters' placements for LLaMA)"
    )]
    NoPlacement {
        module: String,
        method: &'static str,
    },

    #[error(
        "this model takes no prefix (prefix tuning needs a LLaMA model with the same KV heads in every layer)"
    )]
    NoPrefix,

    #[error("{module}: the model has no module with this path")]
    UnknownModule { module: String },

    #[error("{module}: already has an adapter")]
    AlreadyAdapted { module: String },

    #[error("{module}: {source}")]
    Tensor {
        module: String,
        #[source]
        source: candle_core::Error,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
}

impl AdapterError {
    /// Wrap a tensor error with the module it happened in.
    pub fn tensor(module: impl Into<String>) -> impl FnOnce(candle_core::Error) -> Self {
        let module = module.into();
        move |source| AdapterError::Tensor { module, source }
    }
}
