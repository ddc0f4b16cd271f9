//! The head of a Slurm run: it keeps the job graph, submits each job when its inputs are
//! committed, and takes a job as done when its entry is committed to the shared store.
//!
//! Why submit when ready rather than everything at once with `--dependency=afterok`: the store,
//! not the scheduler, knows what is computed. A key that another head (or job-array task) is
//! computing is no Slurm dependency of ours; a dependency that is already committed needs no
//! job; and a failed job would leave `DependencyNeverSatisfied` jobs behind that someone must
//! clean up. The price is one poll interval of latency per level of the graph.
//!
//! ```text
//! loop: interrupted? -> scancel every queued job, wait until they leave the queue, stop
//!       squeue (one call) -> per queued job: entry committed -> done
//!                                           final state, no entry -> another holder? wait
//!                                                                 -> NODE_FAIL/PREEMPTED? resubmit
//!                                                                 -> failed (state, id, log tail)
//!       per pending job whose inputs are done: cached? -> done
//!                                              queued by another head / key locked? -> wait
//!                                              else sbatch (at most max_jobs in the queue)
//! ```
//!
//! A job never writes a partial entry: the worker (`rora job`) commits through the store's
//! reservation, so a job Slurm kills leaves only staging and the key's resume dir (a train job
//! resumes from its last checkpoint when it runs again).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cache::{Entry, Probe, Store};
use crate::exec::ExecError;
use crate::exec::events::{Event, Reporters};
use crate::exec::job::JobSpec;
use crate::exec::order::topo_order;
use crate::exec::select::{ExecOptions, select};
use crate::exec::summary::{Outcome, RunSummary};

use super::command::{Cluster, NAME_PREFIX, QueueRow, Submission, log_tail, store_id};
use super::resources::{JobNeeds, resources};
use super::settings::Settings;

/// How many lines of a failed job's log go into its error.
const LOG_TAIL: usize = 15;
/// The poll interval right after something changed (a submission, a state, a commit); it doubles
/// while nothing changes, up to the settings' `poll`. Short jobs are seen done quickly, and a
/// queue of long jobs is asked at the slow rate.
const FAST_POLL: Duration = Duration::from_millis(200);
/// How long an interrupted head waits for its cancelled jobs to leave the queue.
const CANCEL_WAIT: Duration = Duration::from_secs(120);

/// Everything the head needs besides the jobs.
pub struct Head<'a> {
    pub store: &'a Store,
    pub cluster: &'a dyn Cluster,
    pub settings: &'a Settings,
    pub reporters: &'a Reporters,
    pub options: ExecOptions,
    /// Per job (indexed like the job list): what sizes it.
    pub needs: &'a [JobNeeds],
    /// The command a job runs: the worker for this job (`forced`: recompute even if cached).
    pub worker: &'a dyn Fn(&JobSpec, bool) -> Vec<String>,
    /// `rora-<tag>`: every job's name.
    pub name: String,
    /// Where the jobs' logs go.
    pub logs: PathBuf,
    /// Set by a signal handler: cancel and stop.
    pub interrupt: &'a AtomicBool,
}

/// What a Slurm run did.
pub struct HeadRun {
    pub summary: RunSummary,
    pub interrupted: bool,
}

/// A job this head has in the queue.
struct Queued {
    id: String,
    log: PathBuf,
    since: Instant,
    /// The inode of the entry that was in the store at submission (a forced job's old one): the
    /// job is done when an entry with another inode is committed.
    old: Option<u64>,
    /// The last (state, reason, node) reported.
    last: Option<(String, String, String)>,
}

/// A new run tag: `rora-` and 8 hex digits of the time and this process.
pub fn run_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{nanos}.{}", std::process::id());
    let hex = blake3::hash(seed.as_bytes()).to_hex();
    format!("{NAME_PREFIX}{}", &hex[..8])
}

/// What `sbatch` gets for `job` of the run `name` on the store at `root`: its comment, its log
/// under `logs`, its resources, and the worker `command` (the head and `rora plan` both use it).
pub fn submission(
    name: &str,
    root: &Path,
    logs: &Path,
    settings: &Settings,
    needs: &JobNeeds,
    job: &JobSpec,
    command: Vec<String>,
) -> Submission {
    Submission {
        name: name.to_string(),
        store: store_id(root),
        key: job.key.clone(),
        log: logs.join(log_name(&job.label)),
        resources: resources(settings, needs),
        command,
    }
}

/// A job's log file name (`%j` is Slurm's job id).
pub fn log_name(label: &str) -> String {
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=,@-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.%j.log")
}

impl Head<'_> {
    /// The submission of `job` (what `sbatch` gets).
    pub fn submission(&self, job: &JobSpec, forced: bool) -> Submission {
        submission(
            &self.name,
            self.store.root(),
            &self.logs,
            self.settings,
            &self.needs[job.id],
            job,
            (self.worker)(job, forced),
        )
    }

    pub fn run(&self, jobs: &[JobSpec]) -> Result<HeadRun, ExecError> {
        let order = topo_order(jobs)?;
        let sel = select(jobs, &self.options)?;
        let start = Instant::now();
        let selected = sel.selected.iter().filter(|s| **s).count();
        self.reporters
            .emit(&Event::run_started(jobs.len(), selected, false));
        if let Err(e) = std::fs::create_dir_all(&self.logs) {
            return Err(ExecError::Log {
                path: self.logs.clone(),
                source: e,
            });
        }

        // A cluster that does not answer now is a setup problem, not a flaky controller.
        if let Err(e) = self.cluster.queue() {
            return Err(ExecError::Scheduler {
                message: e.to_string(),
            });
        }

        let mut outcomes: Vec<Option<Outcome>> = vec![None; jobs.len()];
        let mut queued: HashMap<usize, Queued> = HashMap::new();
        let mut attempts = vec![0u32; jobs.len()];
        let mut waiting = vec![false; jobs.len()];
        let mut summary = Vec::new();
        let mut pending: Vec<usize> = order.into_iter().filter(|&id| sel.selected[id]).collect();
        let mut stopped = false;
        let mut interrupted = false;
        let mut queue_error: Option<String> = None;
        let me = store_id(self.store.root());
        let mut wait = FAST_POLL.min(self.settings.poll);

        loop {
            if self.interrupt.load(Ordering::SeqCst) {
                interrupted = true;
                self.cancel_all(&queued);
                for (&id, _) in queued.iter() {
                    let o = Outcome::Failed {
                        error: "cancelled: the run was interrupted".into(),
                    };
                    summary.push((jobs[id].as_ref(), o.clone()));
                    outcomes[id] = Some(o);
                }
                queued.clear();
                for &id in &pending {
                    summary.push((jobs[id].as_ref(), Outcome::NotRun));
                }
                pending.clear();
                break;
            }

            // The queue, once per round (only when something of ours is or may be queued).
            let rows: Vec<QueueRow> = if queued.is_empty() && pending.is_empty() {
                vec![]
            } else {
                match self.cluster.queue() {
                    Ok(r) => {
                        queue_error = None;
                        r
                    }
                    Err(e) => {
                        // A flaky controller is no reason to give up on hours of queued work:
                        // say so once and ask again next round.
                        let text = e.to_string();
                        if queue_error.as_deref() != Some(&text) {
                            eprintln!("warning: {text}; asking again in {:?}", self.settings.poll);
                        }
                        queue_error = Some(text);
                        self.sleep(self.settings.poll);
                        continue;
                    }
                }
            };
            let by_id: HashMap<&str, &QueueRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
            let mine: HashSet<&str> = queued.values().map(|q| q.id.as_str()).collect();
            // Keys of this store that another head's jobs have in the queue.
            let elsewhere: HashSet<&str> = rows
                .iter()
                .filter(|r| r.active() && !mine.contains(r.id.as_str()))
                .filter(|r| r.store.as_deref() == Some(me.as_str()))
                .filter_map(|r| r.key.as_deref())
                .collect();

            let mut changed = false;
            // Queued jobs: done, still queued, to resubmit, or failed.
            let mut finished: Vec<(usize, Option<Outcome>)> = Vec::new();
            let mut ids: Vec<usize> = queued.keys().copied().collect();
            ids.sort_unstable();
            for id in ids {
                let job = &jobs[id];
                let q = queued
                    .get_mut(&id)
                    .expect("invariant: id from queued's keys");
                let row = by_id.get(q.id.as_str()).copied();
                let active = row.is_some_and(QueueRow::active);
                if let Some(r) = row {
                    let now = (r.state.clone(), r.reason.clone(), r.node.clone());
                    if q.last.as_ref() != Some(&now) {
                        self.reporters.emit(&Event::JobQueueState {
                            job: job.as_ref(),
                            slurm_id: q.id.clone(),
                            state: r.state.clone(),
                            reason: r.reason.clone(),
                            node: r.node.clone(),
                        });
                        q.last = Some(now);
                        changed = true;
                    }
                }
                // A forced job's old entry is valid all along: only a new one counts.
                if let Ok(Probe::Valid(entry)) = self.store.probe(&job.key)
                    && entry_inode(&entry) != q.old
                {
                    let o = if row.is_some_and(|r| r.state == "PENDING") {
                        // another run committed it while ours waited in the queue
                        if let Err(e) = self.cluster.cancel(std::slice::from_ref(&q.id)) {
                            eprintln!("warning: {e}");
                        }
                        self.cached(job, entry)
                    } else {
                        self.done(job, entry, q.since)
                    };
                    finished.push((id, Some(o)));
                    continue;
                }
                if active {
                    continue;
                }
                // Ended (or purged from the queue) without an entry.
                if self.store.held_elsewhere(&job.key).unwrap_or(false) {
                    // Another head's job has the key: ours found it busy and left.
                    finished.push((id, None));
                    continue;
                }
                let (state, reason, node) = match row {
                    Some(r) => (r.state.as_str(), r.reason.as_str(), r.node.as_str()),
                    None => ("UNKNOWN (no longer in squeue)", "", ""),
                };
                if row.is_some_and(QueueRow::retryable) && attempts[id] <= self.settings.retries {
                    finished.push((id, None));
                    continue;
                }
                let log = log_path(&q.log, &q.id);
                let tail = log_tail(&log, LOG_TAIL);
                let mut error = format!("Slurm job {} ended {state}", q.id);
                if !reason.is_empty() && reason != "None" {
                    error.push_str(&format!(" ({reason})"));
                }
                if !node.is_empty() {
                    error.push_str(&format!(" on {node}"));
                }
                error.push_str(&format!(" without committing; log {}", log.display()));
                if !tail.is_empty() {
                    error.push_str(":\n");
                    error.push_str(&indent(&tail));
                }
                finished.push((id, Some(self.fail(job, q.since, error))));
            }
            changed |= !finished.is_empty();
            for (id, outcome) in finished {
                queued.remove(&id);
                match outcome {
                    Some(o) => {
                        stopped |= self.options.stops(&o);
                        summary.push((jobs[id].as_ref(), o.clone()));
                        outcomes[id] = Some(o);
                    }
                    // to submit again, or to wait for another holder
                    None => pending.push(id),
                }
            }
            pending.sort_unstable();

            // Pending jobs whose inputs are done: cached, waiting, or submitted.
            let mut later = Vec::new();
            for &id in &pending {
                let job = &jobs[id];
                if stopped {
                    summary.push((job.as_ref(), Outcome::NotRun));
                    outcomes[id] = Some(Outcome::NotRun);
                    continue;
                }
                if job
                    .deps
                    .iter()
                    .any(|&d| sel.selected[d] && outcomes[d].is_none())
                {
                    later.push(id);
                    continue;
                }
                if let Some(o) = self.missing_input(jobs, job, &outcomes, &sel.selected) {
                    stopped |= self.options.stops(&o);
                    summary.push((job.as_ref(), o.clone()));
                    outcomes[id] = Some(o);
                    continue;
                }
                if !sel.forced[id]
                    && let Ok(Probe::Valid(entry)) = self.store.probe_deep(&job.key)
                {
                    // in the store already, or computed by another run after ours found it busy
                    let o = self.cached(job, entry);
                    summary.push((job.as_ref(), o.clone()));
                    outcomes[id] = Some(o);
                    continue;
                }
                let busy = elsewhere.contains(job.key.as_str())
                    || (!sel.forced[id] && self.store.held_elsewhere(&job.key).unwrap_or(false));
                if busy {
                    if !std::mem::replace(&mut waiting[id], true) {
                        self.reporters
                            .emit(&Event::JobWaiting { job: job.as_ref() });
                    }
                    later.push(id);
                    continue;
                }
                if queued.len() >= self.settings.max_jobs {
                    later.push(id);
                    continue;
                }
                // A forced job is forced on every attempt (its worker clears the key's resume
                // dir): without it the worker would take the old entry as a hit.
                let sub = self.submission(job, sel.forced[id]);
                let old = match self.store.probe(&job.key) {
                    Ok(Probe::Valid(e)) => entry_inode(&e),
                    _ => None,
                };
                match self.cluster.submit(self.settings, &sub) {
                    Ok(slurm_id) => {
                        changed = true;
                        attempts[id] += 1;
                        let log = log_path(&sub.log, &slurm_id);
                        self.reporters.emit(&Event::JobSubmitted {
                            job: job.as_ref(),
                            slurm_id: slurm_id.clone(),
                            log: log.display().to_string(),
                            attempt: attempts[id],
                        });
                        queued.insert(
                            id,
                            Queued {
                                id: slurm_id,
                                log: sub.log,
                                since: Instant::now(),
                                old,
                                last: None,
                            },
                        );
                    }
                    Err(e) => {
                        let o = self.fail(job, Instant::now(), format!("cannot submit: {e}"));
                        stopped |= self.options.stops(&o);
                        summary.push((job.as_ref(), o.clone()));
                        outcomes[id] = Some(o);
                    }
                }
            }
            pending = later;
            if pending.is_empty() && queued.is_empty() {
                break;
            }
            wait = if changed {
                FAST_POLL.min(self.settings.poll)
            } else {
                (wait * 2).min(self.settings.poll)
            };
            self.sleep(wait);
        }

        let summary = RunSummary::finish(summary, start, self.reporters);
        Ok(HeadRun {
            summary,
            interrupted,
        })
    }

    /// `scancel` every queued job, then wait until none of them is active.
    fn cancel_all(&self, queued: &HashMap<usize, Queued>) {
        let mut ids: Vec<String> = queued.values().map(|q| q.id.clone()).collect();
        ids.sort();
        if let Err(e) = self.cluster.cancel(&ids) {
            eprintln!("warning: {e}");
        }
        let deadline = Instant::now() + CANCEL_WAIT;
        let mut left = ids.len();
        while !ids.is_empty() && Instant::now() < deadline {
            match self.cluster.queue() {
                Ok(rows) => {
                    left = rows
                        .iter()
                        .filter(|r| r.active() && ids.contains(&r.id))
                        .count();
                    if left == 0 {
                        break;
                    }
                }
                Err(e) => eprintln!("warning: {e}"),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        self.reporters.emit(&Event::RunInterrupted {
            cancelled: ids,
            left,
        });
    }

    /// Sleep `d`, waking early on an interrupt.
    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end && !self.interrupt.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20).min(d));
        }
    }

    /// A failed input blocks the job; an input outside the selection must be in the store.
    fn missing_input(
        &self,
        jobs: &[JobSpec],
        job: &JobSpec,
        outcomes: &[Option<Outcome>],
        selected: &[bool],
    ) -> Option<Outcome> {
        for &dep in &job.deps {
            let d = &jobs[dep];
            if selected[dep] {
                if outcomes[dep].as_ref().and_then(Outcome::entry).is_none() {
                    self.reporters.emit(&Event::JobBlocked {
                        job: job.as_ref(),
                        failed_dep: d.label.clone(),
                    });
                    return Some(Outcome::Blocked {
                        failed_dep: d.label.clone(),
                    });
                }
            } else if !matches!(self.store.probe(&d.key), Ok(Probe::Valid(_))) {
                return Some(self.fail(
                    job,
                    Instant::now(),
                    format!(
                        "input {} is not in the cache and is outside this run's selection; run it first",
                        d.label
                    ),
                ));
            }
        }
        None
    }

    fn cached(&self, job: &JobSpec, entry: Entry) -> Outcome {
        self.reporters.emit(&Event::JobCached {
            job: job.as_ref(),
            path: entry.out_dir().display().to_string(),
        });
        Outcome::Cached(entry)
    }

    fn done(&self, job: &JobSpec, entry: Entry, since: Instant) -> Outcome {
        let secs = since.elapsed().as_secs_f64();
        self.reporters.emit(&Event::JobDone {
            job: job.as_ref(),
            secs,
            bytes: entry.manifest().size,
            path: entry.out_dir().display().to_string(),
        });
        Outcome::Computed { entry, secs }
    }

    fn fail(&self, job: &JobSpec, since: Instant, error: String) -> Outcome {
        self.reporters.emit(&Event::JobFailed {
            job: job.as_ref(),
            secs: since.elapsed().as_secs_f64(),
            error: error.clone(),
        });
        Outcome::Failed { error }
    }
}

/// The inode of an entry's directory: a new commit of the key is a new directory.
fn entry_inode(entry: &Entry) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(entry.dir()).ok().map(|m| m.ino())
}

/// The log of Slurm job `id` (`%j` replaced).
pub fn log_path(pattern: &Path, id: &str) -> PathBuf {
    PathBuf::from(pattern.display().to_string().replace("%j", id))
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
