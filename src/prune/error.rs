//! Errors of pruning. Each names the module (HF path) or the parameter at fault.

use crate::model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("sparsity {0} is outside [0, 1)")]
    BadSparsity(f64),
    #[error("N:M pattern {n}:{m} is invalid: {reason}")]
    BadNm { n: usize, m: usize, reason: String },
    #[error("structured ratio `{field}` = {value} is outside [0, 1)")]
    BadRatio { field: &'static str, value: f64 },
    #[error("`{module}`: {reason}")]
    Module { module: String, reason: String },
    #[error("calibration: {0}")]
    Calibration(String),
    #[error("structured plan: {0}")]
    Plan(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = PruneError> = std::result::Result<T, E>;

impl PruneError {
    pub(crate) fn module(module: &str, reason: impl Into<String>) -> Self {
        PruneError::Module {
            module: module.to_string(),
            reason: reason.into(),
        }
    }
}
