//! Errors of the evaluation module. Each variant names the file and the place (line, field, task).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    BadRow {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: no rows")]
    EmptyTask { path: PathBuf },
    #[error("task `{task}`: no eval file; looked for {tried}")]
    MissingTaskFile { task: String, tried: String },
    #[error("task `{task}`, item {id}: {message}")]
    BadItem {
        task: String,
        id: String,
        message: String,
    },
    #[error("tokenizer failed on {what}: {message}")]
    Tokenizer { what: String, message: String },
    #[error("model failed during {what}: {source}")]
    Model {
        what: String,
        #[source]
        source: candle_core::Error,
    },
    /// A task that cannot be resolved: an unknown name, a task file with errors, missing rows.
    #[error("{0}")]
    Task(String),
    #[error("invalid eval config: {0}")]
    Config(String),
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("{path}: invalid results file: {message}")]
    BadResults { path: PathBuf, message: String },
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn model(what: impl Into<String>) -> impl FnOnce(candle_core::Error) -> Self {
        let what = what.into();
        move |source| Self::Model { what, source }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, message: impl ToString) -> Self {
        Self::Write {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, EvalError>;
