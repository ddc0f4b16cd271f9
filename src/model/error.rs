//! Errors of model loading and running. Every variant that concerns a file names it, and the
//! tensor, field or metadata key at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {reason}")]
    CorruptSafetensors { path: PathBuf, reason: String },
    #[error("{path}: not a valid GGUF file: {reason}")]
    CorruptGguf { path: PathBuf, reason: String },
    #[error(
        "{path}: tensor `{tensor}` uses quantization type {kind}, which rora cannot dequantize"
    )]
    UnsupportedQuant {
        path: PathBuf,
        tensor: String,
        kind: String,
    },
    #[error("{path}: tensor `{tensor}` is missing")]
    MissingTensor { path: PathBuf, tensor: String },
    #[error("{path}: tensor `{tensor}` has shape {got:?}, expected {expected:?}")]
    WrongShape {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("{path}: tensor `{tensor}` has dtype {dtype}, expected f32, f16 or bf16")]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{path}: field `{field}` is missing")]
    MissingField { path: PathBuf, field: String },
    #[error("{path}: field `{field}` is invalid: {reason}")]
    InvalidField {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("{path}: the tokenizer has {tokenizer} tokens but the model's vocabulary has {model}")]
    VocabMismatch {
        path: PathBuf,
        tokenizer: usize,
        model: usize,
    },
    #[error("{path}: unsupported model: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("invalid model spec `{spec}`: {reason}")]
    InvalidSpec { spec: String, reason: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}
