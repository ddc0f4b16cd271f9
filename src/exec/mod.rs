//! The executor over a plan (DESIGN.md "Data flow"): jobs in dependency order, each looked up in
//! the store and computed by a [`StageRunner`] only on a miss, with events for reporters.
//!
//! ```text
//! [JobSpec] -> topo_order -> select(only/until/force) -> per job:
//!     dry_run: probe -> JobPlanned
//!     lookup(key) -> Hit -> JobCached
//!                 -> Miss(reservation) -> JobStarted -> runner.run(out_dir) -> commit -> JobDone
//!                                                                      \-> error -> JobFailed (nothing committed)
//! -> RunSummary (exit code 0, or 3 when a stage failed)
//! ```
//! `exec` knows jobs, the cache and events, not tensors.

pub mod console;
pub mod error;
pub mod events;
pub mod executor;
pub mod from_plan;
pub mod job;
pub mod jsonl;
pub mod order;
pub mod progress;
pub mod runner;
pub mod select;
pub mod session;
pub mod summary;

pub use console::ConsoleReporter;
pub use error::ExecError;
pub use events::{Event, Recorder, Reporter, Reporters};
pub use executor::Executor;
pub use from_plan::jobs_from_plan;
pub use job::{JobId, JobRef, JobSpec, Selector};
pub use jsonl::JsonlReporter;
pub use progress::{NoProgress, Progress};
pub use runner::{StageError, StageRunner};
pub use select::ExecOptions;
pub use session::{Session, run_with_log};
pub use summary::{Counts, Outcome, RunSummary};

#[cfg(test)]
mod tests;
