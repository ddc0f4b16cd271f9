//! Reports over a set of fine-tuning runs: "did RoRA help?".
//!
//! Input: [`RunRecord`]s (method, rank, alpha, scaling rule, effective scale, seed, protocol,
//! per-task accuracies, train loss curve, validation loss), from a `runs.json` or run directories
//! ([`run`]). Output, in one directory ([`write_report`]):
//!
//! ```text
//! table.md  table.csv  table.json     one table per protocol (see `table`); table.md also has
//!                                     the paired differences vs the baseline (see `paired`)
//! paired.json                         those differences with their intervals
//! runs.json                           the input runs, so a report can be rebuilt
//! accuracy_vs_rank.<protocol>.{png,svg}
//! loss_curves.{png,svg}               when some run has a loss curve
//! val_loss_vs_rank.{png,svg}          when some run has a validation loss
//! ```

pub mod error;
mod labels;
pub mod metrics;
pub mod paired;
pub mod plot;
pub mod run;
pub mod table;

use std::path::{Path, PathBuf};

pub use error::ReportError;
pub use metrics::{LossCurves, LossPoint};
pub use paired::{Compare, PairedTable, build_paired, render_paired_markdown};
pub use run::{Outcomes, RunMeta, RunRecord, load_run_dir, load_runs_file};
pub use table::{Table, build_tables, render_csv, render_markdown};

use error::Result;

/// Write the tables, the runs and the plots into `dir`; returns the files written.
pub fn write_report(runs: &[RunRecord], compare: &Compare, dir: &Path) -> Result<Vec<PathBuf>> {
    if runs.is_empty() {
        return Err(ReportError::NoRuns);
    }
    std::fs::create_dir_all(dir).map_err(|e| ReportError::write(dir, e))?;
    let tables = build_tables(runs);
    let mut written = Vec::new();
    let mut put = |name: &str, text: String| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| ReportError::write(&path, e))?;
        written.push(path);
        Ok(())
    };
    let tasks_of = tables
        .iter()
        .map(|t| (t.protocol, t.tasks.clone()))
        .collect();
    let paired = build_paired(runs, &tasks_of, compare);
    put(
        "table.md",
        render_markdown(&tables) + &render_paired_markdown(&paired),
    )?;
    if !paired.is_empty() {
        put("paired.json", pretty(&paired, dir)?)?;
    }
    put("table.csv", render_csv(&tables))?;
    put("table.json", pretty(&tables, dir)?)?;
    put("runs.json", pretty(&runs, dir)?)?;
    for t in &tables {
        written.extend(plot::accuracy_vs_rank(t, dir)?);
    }
    if runs.iter().any(|r| !r.train_loss.is_empty()) {
        written.extend(plot::loss_curves(runs, dir)?);
    }
    if let Some(t) = tables
        .iter()
        .find(|t| t.rows.iter().any(|r| r.val_loss.is_some()))
    {
        written.extend(plot::val_loss_vs_rank(t, dir)?);
    }
    Ok(written)
}

/// Pretty JSON with a trailing newline.
fn pretty<T: serde::Serialize>(value: &T, dir: &Path) -> Result<String> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| ReportError::write(dir, e))
}

#[cfg(test)]
mod tests;
