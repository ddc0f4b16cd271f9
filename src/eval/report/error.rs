//! Errors of the report module, each naming the file and the place.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    BadLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("plot {path}: {message}")]
    Plot { path: PathBuf, message: String },
    #[error("no runs to report")]
    NoRuns,
}

impl ReportError {
    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, message: impl ToString) -> Self {
        Self::Write {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, ReportError>;
