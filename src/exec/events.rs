//! Events the executor emits, and the reporters that consume them (console, JSONL log, tests).
//! The executor never prints: everything a user sees goes through a [`Reporter`].

use std::sync::Mutex;

use serde::Serialize;

use super::job::JobRef;
use super::summary::Counts;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        jobs: usize,
        selected: usize,
        dry_run: bool,
        unix_time: u64,
    },
    /// `--dry-run`: what would happen.
    JobPlanned {
        job: JobRef,
        cached: bool,
        forced: bool,
    },
    /// Another process holds the key's lock; this one waits for it.
    JobWaiting {
        job: JobRef,
    },
    JobCached {
        job: JobRef,
        path: String,
    },
    /// A corrupt entry was found under the job's key and moved aside; the job is recomputed.
    JobCorrupt {
        job: JobRef,
        defect: String,
    },
    JobStarted {
        job: JobRef,
    },
    JobProgress {
        job: JobRef,
        pos: Option<u64>,
        total: Option<u64>,
        unit: Option<String>,
        message: Option<String>,
        secs: f64,
    },
    JobDone {
        job: JobRef,
        secs: f64,
        bytes: u64,
        path: String,
    },
    JobFailed {
        job: JobRef,
        secs: f64,
        error: String,
    },
    /// Not run because a job it depends on failed.
    JobBlocked {
        job: JobRef,
        failed_dep: String,
    },
    /// A cluster executor submitted the job (`attempt` counts resubmissions after a node
    /// failure or preemption, from 1).
    JobSubmitted {
        job: JobRef,
        slurm_id: String,
        log: String,
        attempt: u32,
    },
    /// The job's state in the cluster's queue changed (`PENDING` with its reason, `RUNNING` on a
    /// node, or a final state).
    JobQueueState {
        job: JobRef,
        slurm_id: String,
        state: String,
        reason: String,
        node: String,
    },
    /// The head was interrupted (SIGINT, SIGTERM): it cancelled these cluster jobs and waited
    /// until they left the queue (`left`: how many were still there when it gave up waiting).
    RunInterrupted {
        cancelled: Vec<String>,
        left: usize,
    },
    RunFinished {
        counts: Counts,
        secs: f64,
    },
}

impl Event {
    /// The first event of a run of `jobs` jobs, `selected` of them to run, stamped now.
    pub fn run_started(jobs: usize, selected: usize, dry_run: bool) -> Event {
        let unix_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Event::RunStarted {
            jobs,
            selected,
            dry_run,
            unix_time,
        }
    }
}

/// Something that wants to hear about the run. Called from the executor's thread, in order.
pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event);
}

/// A fan-out over several reporters.
#[derive(Default)]
pub struct Reporters(Vec<Box<dyn Reporter>>);

impl Reporters {
    pub fn new() -> Reporters {
        Reporters(Vec::new())
    }

    pub fn push(&mut self, r: impl Reporter + 'static) {
        self.0.push(Box::new(r));
    }

    pub fn push_boxed(&mut self, r: Box<dyn Reporter>) {
        self.0.push(r);
    }

    pub fn emit(&self, event: &Event) {
        for r in &self.0 {
            r.event(event);
        }
    }
}

/// Keeps every event (tests, embedding).
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Event>>);

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Reporter for std::sync::Arc<Recorder> {
    fn event(&self, event: &Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event.clone());
        }
    }
}
