//! Errors of the training loop. Each names the step, file or tensor it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid training config: {field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("non-finite loss ({loss}) at step {step}; the last good checkpoint is kept")]
    NonFiniteLoss { step: usize, loss: f64 },
    #[error("non-finite gradient norm ({norm}) at step {step}; the last good checkpoint is kept")]
    NonFiniteGrad { step: usize, norm: f64 },
    #[error("the model has no trainable variables")]
    NoTrainableVars,
    #[error("the training data yields no batches")]
    NoData,
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tensor computation at step {step}: {source}")]
    Candle {
        step: usize,
        source: candle_core::Error,
    },
    #[error("data: training batch {index} of epoch {epoch}: {source}")]
    Data {
        epoch: usize,
        index: usize,
        source: super::source::SourceError,
    },
    #[error("data: validation batch {index}: {source}")]
    ValData {
        index: usize,
        source: super::source::SourceError,
    },
    #[error(
        "variable {name} received no gradient: the forward pass uses an op without a backward, or does not use the variable"
    )]
    NoGradient { name: String },
    #[error("training stopped by a hook at step {step}")]
    Stopped { step: usize },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }

    pub(crate) fn candle(step: usize) -> impl FnOnce(candle_core::Error) -> TrainError {
        move |source| TrainError::Candle { step, source }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl ToString) -> TrainError {
        TrainError::Checkpoint {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
