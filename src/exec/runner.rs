//! The seam between the executor and the work: a [`StageRunner`] computes one job into an empty
//! output dir, reading its dependencies' committed outputs, and reports progress. It returns JSON
//! metadata that is stored in the entry's manifest. It must not touch anything outside `out_dir`
//! (the store commits exactly what is there).
//!
//! The executor calls `run` while holding the job key's lock, so a runner may also keep state in
//! `cache::layout::resume_dir(root, &job.key)` (e.g. training checkpoints): it survives a crash,
//! is seen by the next attempt of the same key, and is deleted when the key is committed (and
//! cleared by `--force`).

use std::path::Path;

use crate::cache::Entry;

use super::job::JobSpec;
use super::progress::Progress;

pub trait StageRunner: Sync {
    /// Compute `job` into `out_dir`. `inputs[i]` is the committed entry of `job.deps[i]`.
    fn run(
        &self,
        job: &JobSpec,
        inputs: &[Entry],
        out_dir: &Path,
        progress: &dyn Progress,
    ) -> Result<serde_json::Value, StageError>;
}

/// Why a stage failed: any error, with its chain of causes when displayed.
pub struct StageError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl<E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>> From<E> for StageError {
    fn from(e: E) -> Self {
        StageError(e.into())
    }
}

impl StageError {
    pub fn msg(text: impl Into<String>) -> StageError {
        StageError(text.into().into())
    }

    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl std::fmt::Debug for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StageError({self})")
    }
}
