//! Errors that stop a run before any job starts (a malformed job list, a selector that matches
//! nothing, an event log that cannot be created). Stage failures are not errors of the executor:
//! they are outcomes in the [`super::RunSummary`].

use std::path::PathBuf;

use super::job::SelectorError;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("job list: position {pos} holds job id {id}; jobs must be indexed by id")]
    BadId { pos: usize, id: usize },
    #[error("job {label}: depends on unknown job id {dep}")]
    UnknownDep { label: String, dep: usize },
    #[error("job graph has a cycle: {path}")]
    Cycle { path: String },
    #[error("--{flag} {selector}: matches no job{hint}")]
    NoMatch {
        flag: &'static str,
        selector: String,
        hint: String,
    },
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error("the scheduler does not answer: {message}")]
    Scheduler { message: String },
    #[error("cannot write the event log {}: {source}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
