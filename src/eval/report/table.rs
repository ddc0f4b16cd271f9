//! The accuracy table (the paper's Tables I and II): one table per protocol, rows method x rank
//! (x seed), columns the tasks and their average, the effective scale beside every row.
//!
//! Guarantees: runs of different protocols never share a table; a (method, rank, alpha, scaling)
//! group with several seeds gets one row per seed followed by a `mean` row (mean and sample sd
//! over seeds); a run's average is the mean over the table's tasks it has; rows are ordered by
//! method (lora, dora, rora, then others alphabetically), then rank, then seed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::run::RunRecord;
use crate::eval::results::Protocol;
use crate::eval::stats::{mean_stderr, t_interval};
use crate::eval::task::commonsense_kind;

/// A mean with the sample standard deviation over seeds and the half-width of the 95% Student-t
/// interval of the mean (`None` for a single value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub sd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<f64>,
}

impl Stat {
    pub fn of(xs: &[f64]) -> Option<Stat> {
        let n = xs.len();
        if n == 0 {
            return None;
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let sd = (n > 1)
            .then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
        let ci95 = t_interval(xs, 0.95).map(|i| i.hi - i.estimate);
        Some(Stat { mean, sd, ci95 })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub method: String,
    pub rank: u32,
    pub alpha: f64,
    pub scaling: String,
    pub effective_scale: f64,
    /// The run's seed; `None` on a mean row.
    pub seed: Option<u64>,
    pub n_seeds: usize,
    /// Accuracy per task column (fraction), `None` where the run lacks the task.
    pub accuracies: Vec<Option<Stat>>,
    pub average: Option<Stat>,
    /// A single run's standard error of `average` (from its per-task standard errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_se: Option<f64>,
    pub val_loss: Option<Stat>,
    /// Trainable parameters in % of the model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_pct: Option<f64>,
    /// Training wall-clock seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<Stat>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub protocol: Protocol,
    pub tasks: Vec<String>,
    pub rows: Vec<Row>,
}

fn method_order(m: &str) -> (usize, String) {
    let pos = ["lora", "dora", "rora"]
        .iter()
        .position(|k| *k == m)
        .unwrap_or(3);
    (pos, m.to_string())
}

/// Task columns: the commonsense tasks in the paper's order, then others alphabetically.
fn task_order(runs: &[&RunRecord]) -> Vec<String> {
    let mut names: Vec<String> = runs
        .iter()
        .flat_map(|r| r.accuracies.keys().cloned())
        .collect();
    names.sort_by_key(|n| {
        (
            commonsense_kind(n)
                .map(|k| k as usize)
                .unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    names.dedup();
    names
}

fn run_average(run: &RunRecord, tasks: &[String]) -> Option<f64> {
    let xs: Vec<f64> = tasks
        .iter()
        .filter_map(|t| run.accuracies.get(t).copied())
        .collect();
    Stat::of(&xs).map(|s| s.mean)
}

/// The standard error of a run's macro average: sqrt(sum of squared per-task standard errors) /
/// number of tasks (tasks are independent samples); `None` without every task's outcomes.
fn average_se(run: &RunRecord, tasks: &[String]) -> Option<f64> {
    let mut sum = 0.0;
    for t in tasks {
        let o = run.outcomes.get(t)?;
        let xs: Vec<f64> = o.correct.iter().map(|&c| c as u8 as f64).collect();
        sum += mean_stderr(&xs)?.powi(2);
    }
    (!tasks.is_empty()).then(|| sum.sqrt() / tasks.len() as f64)
}

/// Build one table per protocol present in `runs`.
pub fn build_tables(runs: &[RunRecord]) -> Vec<Table> {
    let mut by_protocol: BTreeMap<Protocol, Vec<&RunRecord>> = BTreeMap::new();
    for r in runs {
        by_protocol.entry(r.protocol).or_default().push(r);
    }
    by_protocol
        .into_iter()
        .map(|(protocol, runs)| build_table(protocol, &runs))
        .collect()
}

type GroupKey = ((usize, String), u32, u64, String);

fn build_table(protocol: Protocol, runs: &[&RunRecord]) -> Table {
    let tasks = task_order(runs);
    let mut groups: BTreeMap<GroupKey, Vec<&RunRecord>> = BTreeMap::new();
    for r in runs {
        let key = (
            method_order(&r.method),
            r.rank,
            r.alpha.to_bits(),
            r.scaling.clone(),
        );
        groups.entry(key).or_default().push(r);
    }
    let mut rows = Vec::new();
    for (_, mut group) in groups {
        group.sort_by_key(|r| r.seed);
        let first = group[0];
        let row = |seed: Option<u64>, members: &[&RunRecord]| Row {
            method: first.method.clone(),
            rank: first.rank,
            alpha: first.alpha,
            scaling: first.scaling.clone(),
            effective_scale: first.effective_scale,
            seed,
            n_seeds: members.len(),
            accuracies: tasks
                .iter()
                .map(|t| {
                    Stat::of(
                        &members
                            .iter()
                            .filter_map(|r| r.accuracies.get(t).copied())
                            .collect::<Vec<_>>(),
                    )
                })
                .collect(),
            average: Stat::of(
                &members
                    .iter()
                    .filter_map(|r| run_average(r, &tasks))
                    .collect::<Vec<_>>(),
            ),
            average_se: (members.len() == 1)
                .then(|| average_se(members[0], &tasks))
                .flatten(),
            val_loss: Stat::of(
                &members
                    .iter()
                    .filter_map(|r| r.val_loss)
                    .collect::<Vec<_>>(),
            ),
            params_pct: first.params_pct,
            train_seconds: Stat::of(
                &members
                    .iter()
                    .filter_map(|r| r.train_seconds)
                    .collect::<Vec<_>>(),
            ),
        };
        for r in &group {
            rows.push(row(Some(r.seed), std::slice::from_ref(r)));
        }
        if group.len() > 1 {
            rows.push(row(None, &group));
        }
    }
    Table {
        protocol,
        tasks,
        rows,
    }
}

/// Column title of a task (the paper's abbreviations for the commonsense tasks).
pub fn task_title(task: &str) -> String {
    match task {
        "boolq" => "BoolQ",
        "piqa" => "PIQA",
        "siqa" => "SIQA",
        "hellaswag" => "HellaS",
        "winogrande" => "WinoG",
        "arc-e" => "ARC-e",
        "arc-c" => "ARC-c",
        "obqa" => "OBQA",
        other => other,
    }
    .to_string()
}

fn pct(s: &Option<Stat>) -> String {
    match s {
        None => "–".into(),
        Some(Stat {
            mean, ci95: None, ..
        }) => format!("{:.1}", 100.0 * mean),
        Some(Stat {
            mean,
            ci95: Some(h),
            ..
        }) => format!("{:.1} ± {:.1}", 100.0 * mean, 100.0 * h),
    }
}

fn seed_cell(r: &Row) -> String {
    match r.seed {
        Some(s) => s.to_string(),
        None => format!("mean (n={})", r.n_seeds),
    }
}

fn num(x: f64) -> String {
    // Shortest round-trip text, so 16 prints as 16 and 0.25 as 0.25.
    format!("{x}")
}

/// A Markdown table's header line and alignment line: the first column left, the others right.
pub(super) fn md_header(head: &[String]) -> String {
    let align: Vec<&str> = (0..head.len())
        .map(|i| if i == 0 { "---" } else { "---:" })
        .collect();
    format!("| {} |\n|{}|\n", head.join(" | "), align.join("|"))
}

/// Markdown: a heading per protocol and a table; accuracies in %, mean ± sd on mean rows.
pub fn render_markdown(tables: &[Table]) -> String {
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!(
            "### Accuracy (%), protocol `{}`\n\nScale = effective adapter scale (lora: α/r, rora: α/√r); mean rows: mean ± half-width of the 95% Student-t interval over seeds; # Params = trainable / all parameters.\n\n",
            t.protocol.name()
        ));
        let mut head = vec![
            "Method".to_string(),
            "Rank".into(),
            "α".into(),
            "Scale".into(),
            "Seed".into(),
        ];
        head.extend(t.tasks.iter().map(|x| task_title(x)));
        head.extend([
            "Avg".to_string(),
            "Val loss".into(),
            "# Params (%)".into(),
            "Train (s)".into(),
        ]);
        out.push_str(&md_header(&head));
        for r in &t.rows {
            let mut cells = vec![
                r.method.clone(),
                r.rank.to_string(),
                num(r.alpha),
                format!("{:.3} ({})", r.effective_scale, r.scaling),
                seed_cell(r),
            ];
            cells.extend(r.accuracies.iter().map(pct));
            cells.push(if r.seed.is_none() {
                format!("**{}**", pct(&r.average))
            } else {
                pct(&r.average)
            });
            cells.push(match r.val_loss {
                None => "–".into(),
                Some(Stat {
                    mean, ci95: None, ..
                }) => format!("{mean:.4}"),
                Some(Stat {
                    mean,
                    ci95: Some(h),
                    ..
                }) => format!("{mean:.4} ± {h:.4}"),
            });
            cells.push(r.params_pct.map_or("–".into(), |p| format!("{p:.4}")));
            cells.push(
                r.train_seconds
                    .map_or("–".into(), |s| format!("{:.1}", s.mean)),
            );
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out.push('\n');
    }
    out
}

/// CSV: one line per row of every table; accuracies in % (2 decimals), sd columns empty on
/// single-seed rows, `seed` empty on mean rows.
pub fn render_csv(tables: &[Table]) -> String {
    let mut all_tasks: Vec<String> = tables.iter().flat_map(|t| t.tasks.clone()).collect();
    all_tasks.sort_by_key(|n| {
        (
            commonsense_kind(n)
                .map(|k| k as usize)
                .unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    all_tasks.dedup();
    let mut head: Vec<String> = [
        "protocol",
        "method",
        "rank",
        "alpha",
        "scaling",
        "effective_scale",
        "seed",
        "n_seeds",
    ]
    .map(String::from)
    .to_vec();
    for t in all_tasks
        .iter()
        .chain(std::iter::once(&"average".to_string()))
    {
        head.push(t.clone());
        head.push(format!("{t}_sd"));
    }
    head.extend([
        "val_loss".to_string(),
        "val_loss_sd".into(),
        "params_pct".into(),
        "train_seconds".into(),
    ]);
    let mut out = head.join(",") + "\n";
    let f2 = |x: Option<f64>| x.map(|v| format!("{:.2}", 100.0 * v)).unwrap_or_default();
    for t in tables {
        for r in &t.rows {
            let mut cells = vec![
                t.protocol.name().to_string(),
                csv_field(&r.method),
                r.rank.to_string(),
                num(r.alpha),
                csv_field(&r.scaling),
                format!("{:.6}", r.effective_scale),
                r.seed.map(|s| s.to_string()).unwrap_or_default(),
                r.n_seeds.to_string(),
            ];
            for task in &all_tasks {
                let s = t
                    .tasks
                    .iter()
                    .position(|x| x == task)
                    .and_then(|i| r.accuracies[i]);
                cells.push(f2(s.map(|s| s.mean)));
                cells.push(f2(s.and_then(|s| s.sd)));
            }
            cells.push(f2(r.average.map(|s| s.mean)));
            cells.push(f2(r.average.and_then(|s| s.sd)));
            cells.push(
                r.val_loss
                    .map(|s| format!("{:.6}", s.mean))
                    .unwrap_or_default(),
            );
            cells.push(
                r.val_loss
                    .and_then(|s| s.sd)
                    .map(|s| format!("{s:.6}"))
                    .unwrap_or_default(),
            );
            cells.push(r.params_pct.map(|p| format!("{p:.6}")).unwrap_or_default());
            cells.push(
                r.train_seconds
                    .map(|s| format!("{:.3}", s.mean))
                    .unwrap_or_default(),
            );
            out.push_str(&(cells.join(",") + "\n"));
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
