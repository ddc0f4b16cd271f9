//! The usual way to run jobs from the CLI: console lines on stdout (bars on a terminal's stderr)
//! plus a JSONL event log in the cache's `runs/` directory.

use std::path::PathBuf;

use crate::cache::{Store, layout};

use super::console::ConsoleReporter;
use super::error::ExecError;
use super::events::{Reporter, Reporters};
use super::executor::Executor;
use super::job::JobSpec;
use super::jsonl::JsonlReporter;
use super::runner::StageRunner;
use super::select::ExecOptions;
use super::summary::RunSummary;

/// What [`run_with_log`] did.
pub struct Session {
    pub summary: RunSummary,
    /// The JSONL event log of this run.
    pub log: PathBuf,
}

/// Run `jobs` with a JSONL log in `<cache>/runs/` and `console` (e.g. [`ConsoleReporter::stdout`]).
pub fn run_with_log(
    store: &Store,
    runner: &dyn StageRunner,
    jobs: &[JobSpec],
    options: ExecOptions,
    console: Option<ConsoleReporter>,
    extra: Vec<Box<dyn Reporter>>,
) -> Result<Session, ExecError> {
    let log = JsonlReporter::create_in(&layout::runs_dir(store.root()))?;
    let log_path = log.path().to_path_buf();
    let mut reporters = Reporters::new();
    reporters.push(log);
    if let Some(c) = console {
        reporters.push(c);
    }
    for r in extra {
        reporters.push_boxed(r);
    }
    let summary = Executor {
        store,
        runner,
        reporters: &reporters,
        options,
    }
    .run(jobs)?;
    Ok(Session {
        summary,
        log: log_path,
    })
}
