//! Progress of a running stage, reported by the runner and turned into events.

use std::time::Instant;

use super::events::{Event, Reporters};
use super::job::JobRef;

/// Called by stage runners; cheap enough to call per step.
pub trait Progress: Sync {
    /// The number of units (steps, examples, ...) the stage will do.
    fn set_total(&self, total: u64, unit: &str);
    /// Units done so far.
    fn set_position(&self, pos: u64);
    /// A short status, e.g. `loss 1.234`.
    fn message(&self, msg: &str);
}

/// Ignores everything (for runners called outside the executor).
pub struct NoProgress;

impl Progress for NoProgress {
    fn set_total(&self, _: u64, _: &str) {}
    fn set_position(&self, _: u64) {}
    fn message(&self, _: &str) {}
}

/// Forwards progress to the reporters as `JobProgress` events.
pub(crate) struct EventProgress<'a> {
    pub job: JobRef,
    pub reporters: &'a Reporters,
    pub start: Instant,
}

impl Progress for EventProgress<'_> {
    fn set_total(&self, total: u64, unit: &str) {
        self.emit(None, Some(total), Some(unit), None);
    }
    fn set_position(&self, pos: u64) {
        self.emit(Some(pos), None, None, None);
    }
    fn message(&self, msg: &str) {
        self.emit(None, None, None, Some(msg));
    }
}

impl EventProgress<'_> {
    fn emit(
        &self,
        pos: Option<u64>,
        total: Option<u64>,
        unit: Option<&str>,
        message: Option<&str>,
    ) {
        self.reporters.emit(&Event::JobProgress {
            job: self.job.clone(),
            pos,
            total,
            unit: unit.map(str::to_string),
            message: message.map(str::to_string),
            secs: self.start.elapsed().as_secs_f64(),
        });
    }
}
