//! Errors of the data pipeline. Every variant names the file and, where there is one, the place in
//! it (line of a JSONL file, row index of a JSON array or Parquet file) and the field.

use std::fmt;
use std::path::PathBuf;

/// Where a row sits in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// 1-based line of a JSONL file.
    Line(usize),
    /// 0-based row index of a JSON array or a Parquet file.
    Row(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Row(n) => write!(f, "row {n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {location}: invalid JSON: {message}")]
    Json {
        path: PathBuf,
        location: Location,
        message: String,
    },
    #[error("{path}: {location}: field `{field}`: {message}")]
    Field {
        path: PathBuf,
        location: Location,
        field: String,
        message: String,
    },
    #[error("{path}: parquet: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error(
        "{path}: unsupported file type (expected .jsonl, .json, .parquet, optionally .gz for JSON)"
    )]
    UnknownFormat { path: PathBuf },
    #[error("data file pattern `{pattern}`: {message}")]
    Pattern { pattern: String, message: String },
    #[error(
        "{path}: cannot tell the task from the file name (`{name}`); known tasks: {known}; set `task`"
    )]
    UnknownTask {
        path: PathBuf,
        name: String,
        known: String,
    },
    #[error("{path}: {location}: template `{template}`: {message}")]
    Template {
        path: PathBuf,
        location: Location,
        template: String,
        message: String,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("{path}: tokenized dataset: {message}")]
    Store { path: PathBuf, message: String },
    #[error("data config: {0}")]
    Config(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn store(path: impl Into<PathBuf>, message: impl fmt::Display) -> Self {
        DataError::Store {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

/// A sink for records read from a data file; returning an error stops reading.
pub type RecordSink<'a> = dyn FnMut(Location, serde_json::Value) -> Result<(), DataError> + 'a;
