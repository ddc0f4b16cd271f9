//! Why a stage runner failed: the library error of the stage's domain, with the stage context.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Adapter(#[from] crate::adapter::AdapterError),
    #[error(transparent)]
    Data(#[from] crate::train::data::DataError),
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    #[error(transparent)]
    Report(#[from] crate::eval::report::ReportError),
    #[error(transparent)]
    Prune(#[from] crate::prune::PruneError),
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    #[error(transparent)]
    Hub(#[from] crate::hub::HubError),
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The plan and the store disagree (an input entry vanished, a dependency of an unexpected kind).
    #[error("{0}")]
    Plan(String),
    /// The device ran out of memory: the planner's estimate and the device's memory beside the cause.
    #[error("out of memory on {device}: {detail}; cause: {cause}")]
    OutOfMemory {
        device: String,
        detail: String,
        cause: String,
    },
}

pub type Result<T, E = RunError> = std::result::Result<T, E>;

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}
