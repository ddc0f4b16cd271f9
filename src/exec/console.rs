//! The console reporter: one line per job (cached / running with a progress bar / done with its
//! time / failed / blocked) and a summary line. Bars are drawn on stderr only when it is a
//! terminal; lines go to the given writer (stdout in the CLI, a buffer in tests).

use std::io::Write;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::events::{Event, Reporter};
use super::job::JobRef;

pub struct ConsoleReporter {
    state: Mutex<State>,
}

struct State {
    out: Box<dyn Write + Send>,
    bars: bool,
    bar: Option<ProgressBar>,
}

impl ConsoleReporter {
    /// Lines to `out`; progress bars on stderr if `bars` and stderr is a terminal.
    pub fn new(out: Box<dyn Write + Send>, bars: bool) -> ConsoleReporter {
        ConsoleReporter {
            state: Mutex::new(State {
                out,
                bars,
                bar: None,
            }),
        }
    }

    pub fn stdout() -> ConsoleReporter {
        ConsoleReporter::new(Box::new(std::io::stdout()), true)
    }
}

impl Reporter for ConsoleReporter {
    fn event(&self, event: &Event) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        match event {
            Event::JobStarted { job } => {
                if st.bars {
                    st.bar = Some(new_bar(job));
                } else {
                    st.line(format!("  running  {}", job.label));
                }
            }
            Event::JobProgress {
                pos,
                total,
                unit,
                message,
                ..
            } => {
                if let Some(bar) = &st.bar {
                    if let Some(t) = total {
                        bar.set_length(*t);
                        bar.set_style(bar_style(unit.as_deref().unwrap_or("")));
                    }
                    if let Some(p) = pos {
                        bar.set_position(*p);
                    }
                    if let Some(m) = message {
                        bar.set_message(m.clone());
                    }
                }
            }
            other => {
                if let Some(text) = line_for(other) {
                    if matches!(other, Event::JobDone { .. } | Event::JobFailed { .. })
                        && let Some(bar) = st.bar.take()
                    {
                        bar.finish_and_clear();
                    }
                    st.line(text);
                }
            }
        }
    }
}

impl State {
    fn line(&mut self, text: String) {
        let out = &mut self.out;
        let mut write = || {
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

/// The line printed for an event, if any.
pub fn line_for(event: &Event) -> Option<String> {
    Some(match event {
        Event::JobPlanned {
            job,
            cached,
            forced,
        } => {
            let what = if *cached {
                "cached"
            } else if *forced {
                "forced"
            } else {
                "to run"
            };
            format!("  {what:<8} {}  {}", job.label, short(job))
        }
        Event::JobWaiting { job } => format!(
            "  waiting  {}  (another process is computing it)",
            job.label
        ),
        Event::JobCached { job, .. } => format!("  cached   {}  {}", job.label, short(job)),
        Event::JobCorrupt { job, defect } => {
            format!("  corrupt  {}  ({defect}); recomputing", job.label)
        }
        Event::JobDone {
            job, secs, bytes, ..
        } => {
            format!(
                "  done     {}  {}  {}",
                job.label,
                human_secs(*secs),
                human_bytes(*bytes)
            )
        }
        Event::JobFailed { job, error, .. } => format!("  FAILED   {}: {error}", job.label),
        Event::JobBlocked { job, failed_dep } => format!(
            "  blocked  {}  (needs {failed_dep}, which failed)",
            job.label
        ),
        Event::JobSubmitted {
            job,
            slurm_id,
            log,
            attempt,
        } => {
            let again = if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            format!(
                "  submitted {}  slurm {slurm_id}{again}  log {log}",
                job.label
            )
        }
        // A final state: the job's `done`, `cached` or `FAILED` line follows with more to say (a
        // worker that found its key busy also ends FAILED, and its head waits for the holder).
        Event::JobQueueState { state, .. }
            if matches!(
                state.as_str(),
                "COMPLETED"
                    | "COMPLETING"
                    | "FAILED"
                    | "CANCELLED"
                    | "TIMEOUT"
                    | "OUT_OF_MEMORY"
                    | "DEADLINE"
            ) =>
        {
            return None;
        }
        Event::JobQueueState {
            job,
            slurm_id,
            state,
            reason,
            node,
        } => {
            let why = match state.as_str() {
                "RUNNING" if !node.is_empty() => format!("on {node}"),
                _ if !reason.is_empty() && reason != "None" => format!("({reason})"),
                _ => String::new(),
            };
            format!(
                "  {:<8} {}  slurm {slurm_id} {why}",
                state.to_lowercase(),
                job.label
            )
            .trim_end()
            .to_string()
        }
        Event::RunInterrupted { cancelled, left } => {
            let ids = if cancelled.is_empty() {
                "no Slurm job was queued".to_string()
            } else {
                format!(
                    "cancelled {} Slurm job(s): {}",
                    cancelled.len(),
                    cancelled.join(" ")
                )
            };
            if *left == 0 {
                format!("interrupted: {ids}; none is left in the queue")
            } else {
                format!("interrupted: {ids}; {left} still in the queue (check `squeue`)")
            }
        }
        Event::RunFinished { counts: c, secs } => {
            let mut parts = Vec::new();
            for (n, what) in [
                (c.cached, "cached"),
                (c.computed, "computed"),
                (c.would_run, "to run"),
                (c.failed, "failed"),
                (c.blocked, "blocked"),
                (c.not_run, "not run"),
            ] {
                if n > 0 {
                    parts.push(format!("{n} {what}"));
                }
            }
            let total = c.cached + c.computed + c.would_run + c.failed + c.blocked + c.not_run;
            format!(
                "{total} jobs: {} in {}",
                if parts.is_empty() {
                    "nothing".into()
                } else {
                    parts.join(", ")
                },
                human_secs(*secs)
            )
        }
        Event::RunStarted { .. } | Event::JobStarted { .. } | Event::JobProgress { .. } => {
            return None;
        }
    })
}

fn short(job: &JobRef) -> String {
    format!("[{} {}]", job.kind, job.key.get(..12).unwrap_or(&job.key))
}

pub fn human_secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn new_bar(job: &JobRef) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    // A spinner until the runner says how much work there is.
    let spinner = ProgressStyle::with_template("  running  {prefix} {spinner} {elapsed} {msg}");
    bar.set_style(spinner.unwrap_or_else(|_| ProgressStyle::default_spinner()));
    bar.set_prefix(job.label.clone());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn bar_style(unit: &str) -> ProgressStyle {
    let template =
        format!("  running  {{prefix}} {{wide_bar}} {{pos}}/{{len}} {unit} {{elapsed}} {{msg}}");
    ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar())
}
