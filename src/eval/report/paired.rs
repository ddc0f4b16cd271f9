//! Paired comparisons: "did it help?" with an interval. For each run and its baseline run (the
//! `baseline` method at the same rank and seed, or the one run of that method, e.g. the base
//! model), on the items both evaluated: per task and on the average over tasks, the accuracy
//! difference with a paired bootstrap 95% interval (`stats::paired_bootstrap`: items resampled
//! within each task, seeded). A (method, rank) group with several seeds also gets a row of the
//! mean difference over seeds with a 95% Student-t interval.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::run::RunRecord;
use crate::eval::results::Protocol;
use crate::eval::stats::{Interval, PairedTask, paired_bootstrap, t_interval};

/// What to compare with, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compare {
    /// The method runs are compared with.
    pub baseline: String,
    pub resamples: usize,
    pub seed: u64,
}

/// One row: a run (or a seed group's mean) against its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedRow {
    pub method: String,
    pub rank: u32,
    /// `None` on a mean-over-seeds row.
    pub seed: Option<u64>,
    pub baseline: String,
    /// Items compared per task (`None` on mean rows).
    pub items: Vec<Option<usize>>,
    /// Difference (run - baseline) in accuracy per task, with its interval.
    pub tasks: Vec<Option<Interval>>,
    pub average: Option<Interval>,
    /// `paired-bootstrap` or `t-over-seeds`.
    pub method_of_interval: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedTable {
    pub protocol: Protocol,
    pub baseline: String,
    pub tasks: Vec<String>,
    pub resamples: usize,
    pub seed: u64,
    pub rows: Vec<PairedRow>,
}

/// The baseline run of `r` among `runs` (same protocol): the baseline method at the same rank and
/// seed, else the only run of the baseline method.
fn baseline_of<'a>(r: &RunRecord, runs: &[&'a RunRecord], baseline: &str) -> Option<&'a RunRecord> {
    let of_method: Vec<&RunRecord> = runs
        .iter()
        .copied()
        .filter(|b| b.method == baseline)
        .collect();
    of_method
        .iter()
        .copied()
        .find(|b| b.rank == r.rank && b.seed == r.seed)
        .or_else(|| (of_method.len() == 1).then(|| of_method[0]))
}

/// Per task, the 0/1 outcomes of `a` and `b` on the items both have (in `a`'s order).
fn pair_task(a: &RunRecord, b: &RunRecord, task: &str) -> Option<(Vec<f64>, Vec<f64>)> {
    let (oa, ob) = (a.outcomes.get(task)?, b.outcomes.get(task)?);
    let by_id: BTreeMap<&str, bool> = ob
        .ids
        .iter()
        .map(String::as_str)
        .zip(ob.correct.iter().copied())
        .collect();
    let (mut xa, mut xb) = (vec![], vec![]);
    for (id, &ca) in oa.ids.iter().zip(&oa.correct) {
        if let Some(&cb) = by_id.get(id.as_str()) {
            xa.push(ca as u8 as f64);
            xb.push(cb as u8 as f64);
        }
    }
    (!xa.is_empty()).then_some((xa, xb))
}

/// The paired tables, one per protocol that has runs to compare.
pub fn build_paired(
    runs: &[RunRecord],
    tasks_of: &BTreeMap<Protocol, Vec<String>>,
    c: &Compare,
) -> Vec<PairedTable> {
    let mut out = vec![];
    for (protocol, tasks) in tasks_of {
        let runs: Vec<&RunRecord> = runs.iter().filter(|r| r.protocol == *protocol).collect();
        let mut rows = vec![];
        let mut groups: BTreeMap<(String, u32), Vec<(u64, Interval)>> = BTreeMap::new();
        for r in runs.iter().filter(|r| r.method != c.baseline) {
            let Some(b) = baseline_of(r, &runs, &c.baseline) else {
                continue;
            };
            let pairs: Vec<Option<(Vec<f64>, Vec<f64>)>> =
                tasks.iter().map(|t| pair_task(r, b, t)).collect();
            let present: Vec<&(Vec<f64>, Vec<f64>)> = pairs.iter().flatten().collect();
            if present.is_empty() {
                continue;
            }
            let input: Vec<PairedTask<'_>> =
                present.iter().map(|(a, b)| PairedTask { a, b }).collect();
            // invariant: every pair is non-empty with equal lengths and 0/1 values, and
            // resamples >= 100 (the schema's range), so the bootstrap cannot refuse them.
            let Ok(boot) = paired_bootstrap(&input, c.resamples, c.seed, 0.95) else {
                continue;
            };
            let mut it = boot.tasks.into_iter();
            let task_iv: Vec<Option<Interval>> = pairs
                .iter()
                .map(|p| p.as_ref().and_then(|_| it.next()))
                .collect();
            // The average is over the tasks both runs have; over all the table's tasks only
            // then is it the table's average.
            let average = (present.len() == tasks.len()).then_some(boot.average);
            if let Some(a) = average {
                groups
                    .entry((r.method.clone(), r.rank))
                    .or_default()
                    .push((r.seed, a));
            }
            rows.push(PairedRow {
                method: r.method.clone(),
                rank: r.rank,
                seed: Some(r.seed),
                baseline: format!("{} r{} s{}", b.method, b.rank, b.seed),
                items: pairs
                    .iter()
                    .map(|p| p.as_ref().map(|(a, _)| a.len()))
                    .collect(),
                tasks: task_iv,
                average,
                method_of_interval: "paired-bootstrap".into(),
            });
        }
        for ((method, rank), diffs) in groups.into_iter().filter(|(_, d)| d.len() > 1) {
            let xs: Vec<f64> = diffs.iter().map(|(_, i)| i.estimate).collect();
            rows.push(PairedRow {
                method,
                rank,
                seed: None,
                baseline: c.baseline.clone(),
                items: vec![None; tasks.len()],
                tasks: vec![None; tasks.len()],
                average: t_interval(&xs, 0.95),
                method_of_interval: "t-over-seeds".into(),
            });
        }
        rows.sort_by(|a, b| {
            (a.method.as_str(), a.rank, a.seed.is_none(), a.seed).cmp(&(
                b.method.as_str(),
                b.rank,
                b.seed.is_none(),
                b.seed,
            ))
        });
        if !rows.is_empty() {
            out.push(PairedTable {
                protocol: *protocol,
                baseline: c.baseline.clone(),
                tasks: tasks.clone(),
                resamples: c.resamples,
                seed: c.seed,
                rows,
            });
        }
    }
    out
}

fn cell(i: &Option<Interval>) -> String {
    match i {
        None => "–".into(),
        Some(i) => format!(
            "{:+.1} [{:+.1}, {:+.1}]{}",
            100.0 * i.estimate,
            100.0 * i.lo,
            100.0 * i.hi,
            if i.excludes_zero() { " *" } else { "" }
        ),
    }
}

/// Markdown: one table per protocol, differences in percentage points.
pub fn render_paired_markdown(tables: &[PairedTable]) -> String {
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!(
            "### Difference vs `{}` (percentage points), protocol `{}`\n\n\
             Δ [95% interval]: paired bootstrap over the items both runs evaluated ({} resamples, \
             seed {}, percentile interval; the average resamples every task); mean rows: mean Δ \
             over seeds with a Student-t interval. * = the interval excludes 0.\n\n",
            t.baseline,
            t.protocol.name(),
            t.resamples,
            t.seed
        ));
        let mut head = vec![
            "Method".to_string(),
            "Rank".into(),
            "Seed".into(),
            "Baseline".into(),
        ];
        head.extend(t.tasks.iter().map(|x| super::table::task_title(x)));
        head.push("Avg".into());
        out.push_str(&super::table::md_header(&head));
        for r in &t.rows {
            let mut cells = vec![
                r.method.clone(),
                r.rank.to_string(),
                r.seed.map_or("mean (t)".into(), |s| s.to_string()),
                r.baseline.clone(),
            ];
            cells.extend(r.tasks.iter().map(cell));
            cells.push(format!("**{}**", cell(&r.average)));
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out.push('\n');
    }
    out
}
