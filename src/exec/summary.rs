//! The result of a run: what happened to each job, counts, and the exit code.

use serde::Serialize;

use crate::cache::Entry;

use super::job::JobRef;

/// What happened to one job.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Found in the store.
    Cached(Entry),
    /// Computed and committed in this run.
    Computed {
        entry: Entry,
        secs: f64,
    },
    Failed {
        error: String,
    },
    /// A dependency failed.
    Blocked {
        failed_dep: String,
    },
    /// `--dry-run`: would be computed.
    WouldRun,
    /// Not run: an earlier job failed and `keep_going` is off.
    NotRun,
}

impl Outcome {
    pub fn entry(&self) -> Option<&Entry> {
        match self {
            Outcome::Cached(e) | Outcome::Computed { entry: e, .. } => Some(e),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub cached: usize,
    pub computed: usize,
    pub failed: usize,
    pub blocked: usize,
    pub would_run: usize,
    pub not_run: usize,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Selected jobs in execution order.
    pub jobs: Vec<(JobRef, Outcome)>,
    pub secs: f64,
}

impl RunSummary {
    /// The summary of a run that started at `start`, announced with `RunFinished`.
    pub fn finish(
        jobs: Vec<(JobRef, Outcome)>,
        start: std::time::Instant,
        reporters: &super::events::Reporters,
    ) -> RunSummary {
        let summary = RunSummary {
            jobs,
            secs: start.elapsed().as_secs_f64(),
        };
        reporters.emit(&super::events::Event::RunFinished {
            counts: summary.counts(),
            secs: summary.secs,
        });
        summary
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for (_, o) in &self.jobs {
            match o {
                Outcome::Cached(_) => c.cached += 1,
                Outcome::Computed { .. } => c.computed += 1,
                Outcome::Failed { .. } => c.failed += 1,
                Outcome::Blocked { .. } => c.blocked += 1,
                Outcome::WouldRun => c.would_run += 1,
                Outcome::NotRun => c.not_run += 1,
            }
        }
        c
    }

    /// Whether every selected job succeeded (or, in a dry run, was planned).
    pub fn success(&self) -> bool {
        let c = self.counts();
        c.failed == 0 && c.blocked == 0 && c.not_run == 0
    }

    /// The process exit code: 0 ok, 3 a stage failed (see `cli`).
    pub fn exit_code(&self) -> u8 {
        if self.success() { 0 } else { 3 }
    }

    pub fn outcome(&self, label: &str) -> Option<&Outcome> {
        self.jobs
            .iter()
            .find(|(j, _)| j.label == label)
            .map(|(_, o)| o)
    }
}
