//! The executor: runs the selected jobs in dependency order against the store.
//!
//! For each job: a dependency failed -> `Blocked`; `--dry-run` -> probe only; else
//! `store.try_lookup(key)` -> `Hit` (no compute) | `Miss(reservation)` -> runner -> `commit` |
//! busy (another process or thread holds the key). A busy job waits while the executor takes the
//! other ready jobs (those that do not depend on it), in dependency order; only when nothing else
//! can run does it block on the first busy key, and then sees the other holder's entry (or, if
//! that holder failed, computes it). So two runs of overlapping sweeps on one store each take what
//! the other is not computing, and every key is computed once. A runner error or panic drops the
//! reservation, so nothing is committed for that key. Without `keep_going` the first failure stops
//! the run (the rest is `NotRun`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use crate::cache::{CommitInfo, Entry, Lookup, Probe, Reservation, Store};

use super::error::ExecError;
use super::events::{Event, Reporters};
use super::job::JobSpec;
use super::order::topo_order;
use super::progress::EventProgress;
use super::runner::StageRunner;
use super::select::{ExecOptions, Selection, select};
use super::summary::{Outcome, RunSummary};

pub struct Executor<'a> {
    pub store: &'a Store,
    pub runner: &'a dyn StageRunner,
    pub reporters: &'a Reporters,
    pub options: ExecOptions,
}

impl Executor<'_> {
    /// Run `jobs` (indexed by id). Errors only for a malformed job list or selector; stage
    /// failures are outcomes in the summary.
    pub fn run(&self, jobs: &[JobSpec]) -> Result<RunSummary, ExecError> {
        let order = topo_order(jobs)?;
        let sel = select(jobs, &self.options)?;
        let start = Instant::now();
        let selected = sel.selected.iter().filter(|s| **s).count();
        self.reporters.emit(&Event::run_started(
            jobs.len(),
            selected,
            self.options.dry_run,
        ));

        let mut outcomes: Vec<Option<Outcome>> = vec![None; jobs.len()];
        let mut waiting = vec![false; jobs.len()];
        let mut stopped = false;
        let mut summary = Vec::new();
        let mut pending: Vec<usize> = order.into_iter().filter(|&id| sel.selected[id]).collect();
        // The last pass ran nothing: every pending job waits on a busy key, so this pass blocks
        // on the first of them (its inputs are all done: a pending input would come first).
        let mut block = false;
        while !pending.is_empty() {
            let mut later = Vec::new();
            let mut progressed = false;
            for &id in &pending {
                let job = &jobs[id];
                let outcome = if stopped {
                    Outcome::NotRun
                } else if job
                    .deps
                    .iter()
                    .any(|&d| sel.selected[d] && outcomes[d].is_none())
                {
                    // an input is still being computed elsewhere: after it
                    later.push(id);
                    continue;
                } else {
                    let wait = if block && !progressed {
                        Wait::Yes
                    } else {
                        Wait::No
                    };
                    match self.job(jobs, job, &outcomes, &sel, wait) {
                        Some(o) => o,
                        None => {
                            if !std::mem::replace(&mut waiting[id], true) {
                                self.reporters
                                    .emit(&Event::JobWaiting { job: job.as_ref() });
                            }
                            later.push(id);
                            continue;
                        }
                    }
                };
                progressed = true;
                stopped |= self.options.stops(&outcome);
                summary.push((job.as_ref(), outcome.clone()));
                outcomes[id] = Some(outcome);
            }
            block = !progressed;
            pending = later;
        }
        Ok(RunSummary::finish(summary, start, self.reporters))
    }

    /// The job's outcome; `None` when another holder has its key and `wait` is `No`.
    fn job(
        &self,
        jobs: &[JobSpec],
        job: &JobSpec,
        outcomes: &[Option<Outcome>],
        sel: &Selection,
        wait: Wait,
    ) -> Option<Outcome> {
        let forced = sel.forced[job.id];
        if self.options.dry_run {
            return Some(self.plan_only(job, forced));
        }
        let inputs = match self.inputs(jobs, job, outcomes) {
            Ok(inputs) => inputs,
            Err(Missing::Blocked(dep)) => {
                self.reporters.emit(&Event::JobBlocked {
                    job: job.as_ref(),
                    failed_dep: dep.clone(),
                });
                return Some(Outcome::Blocked { failed_dep: dep });
            }
            Err(Missing::NotCached(why)) => return Some(self.fail(job, 0.0, why)),
        };
        let lookup = match (forced, wait) {
            (true, _) => self.store.reserve(&job.key).map(Lookup::Miss),
            (false, Wait::No) => match self.store.try_lookup(&job.key) {
                Ok(None) => return None,
                Ok(Some(l)) => Ok(l),
                Err(e) => Err(e),
            },
            // JobWaiting was reported when the key was first found busy
            (false, Wait::Yes) => self.store.lookup(&job.key),
        };
        Some(match lookup {
            Err(e) => self.fail(job, 0.0, e.to_string()),
            Ok(Lookup::Hit(entry)) => {
                let path = entry.out_dir().display().to_string();
                self.reporters.emit(&Event::JobCached {
                    job: job.as_ref(),
                    path,
                });
                Outcome::Cached(entry)
            }
            Ok(Lookup::Miss(reservation)) => self.compute(job, &inputs, reservation),
        })
    }

    fn compute(&self, job: &JobSpec, inputs: &[Entry], reservation: Reservation) -> Outcome {
        if let Some(defect) = reservation.discarded() {
            self.reporters.emit(&Event::JobCorrupt {
                job: job.as_ref(),
                defect: defect.to_string(),
            });
        }
        self.reporters
            .emit(&Event::JobStarted { job: job.as_ref() });
        let start = Instant::now();
        let progress = EventProgress {
            job: job.as_ref(),
            reporters: self.reporters,
            start,
        };
        let out_dir = reservation.out_dir();
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.runner.run(job, inputs, &out_dir, &progress)
        }));
        let meta = match result {
            Ok(Ok(meta)) => meta,
            // The reservation is dropped on return: staging removed, lock released, no entry.
            Ok(Err(e)) => return self.fail(job, start.elapsed().as_secs_f64(), e.to_string()),
            Err(panic) => return self.fail(job, start.elapsed().as_secs_f64(), panic_text(&panic)),
        };
        let info = CommitInfo {
            stage: job.label.clone(),
            kind: job.kind.clone(),
            pipeline: job.pipeline.clone(),
            meta: serde_json::json!({ "fingerprint": job.fingerprint, "outputs": meta }),
        };
        match reservation.commit(info) {
            Ok(entry) => {
                let secs = start.elapsed().as_secs_f64();
                let (bytes, path) = (entry.manifest().size, entry.out_dir().display().to_string());
                self.reporters.emit(&Event::JobDone {
                    job: job.as_ref(),
                    secs,
                    bytes,
                    path,
                });
                Outcome::Computed { entry, secs }
            }
            Err(e) => self.fail(job, start.elapsed().as_secs_f64(), e.to_string()),
        }
    }

    fn plan_only(&self, job: &JobSpec, forced: bool) -> Outcome {
        let probe = self.store.probe(&job.key);
        let cached = !forced && matches!(probe, Ok(Probe::Valid(_)));
        self.reporters.emit(&Event::JobPlanned {
            job: job.as_ref(),
            cached,
            forced,
        });
        match probe {
            Ok(Probe::Valid(entry)) if cached => Outcome::Cached(entry),
            _ => Outcome::WouldRun,
        }
    }

    /// The committed entries of `job`'s dependencies, in `job.deps` order. A dependency outside the
    /// selection (`--only`) must already be in the store.
    fn inputs(
        &self,
        jobs: &[JobSpec],
        job: &JobSpec,
        outcomes: &[Option<Outcome>],
    ) -> Result<Vec<Entry>, Missing> {
        let mut inputs = Vec::with_capacity(job.deps.len());
        for &dep in &job.deps {
            let dep_job = &jobs[dep];
            match &outcomes[dep] {
                Some(o) => match o.entry() {
                    Some(e) => inputs.push(e.clone()),
                    None => return Err(Missing::Blocked(dep_job.label.clone())),
                },
                None => match self.store.probe(&dep_job.key) {
                    Ok(Probe::Valid(e)) => inputs.push(e),
                    _ => {
                        return Err(Missing::NotCached(format!(
                            "input {} is not in the cache and is outside this run's selection; run it first",
                            dep_job.label()
                        )));
                    }
                },
            }
        }
        Ok(inputs)
    }

    fn fail(&self, job: &JobSpec, secs: f64, error: String) -> Outcome {
        self.reporters.emit(&Event::JobFailed {
            job: job.as_ref(),
            secs,
            error: error.clone(),
        });
        Outcome::Failed { error }
    }
}

/// Whether [`Executor::job`] may block on a key another holder has.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Yes,
}

enum Missing {
    Blocked(String),
    NotCached(String),
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".to_string());
    format!("stage panicked: {msg}")
}
