//! The `report` runner: every run of the `from` eval stage (all sweep points) as one table
//! (method x rank (x seed), tasks + average, the effective scale beside each row) and plots
//! (accuracy vs rank, training loss curves, validation loss vs rank).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::eval::EvalSummary;
use crate::eval::report::{LossCurves, RunRecord, write_report};
use crate::plan::job::Job;
use crate::run::artifacts::{METRICS, TRAIN_SUMMARY};
use crate::run::error::{Result, RunError, io};
use crate::stages::adapter::{AdapterMethod, AdapterSettings};

use super::ReportParams;

/// One run: the eval entry's dir, and the train entry and adapter params behind it.
pub struct RunSource<'a> {
    pub eval_out: PathBuf,
    pub eval_job: &'a Job,
    pub train_out: Option<PathBuf>,
    pub adapter: Option<AdapterSettings>,
    pub train_seed: Option<u64>,
    /// The adapter stage's trainable share of the parameters (%).
    pub params_pct: Option<f64>,
}

fn method_label(a: &AdapterSettings) -> String {
    match a.method {
        AdapterMethod::Dora if a.scaling.name() == "lora" => "dora".into(),
        AdapterMethod::Dora => format!("dora+{}", a.scaling.name()),
        AdapterMethod::Lora => a.scaling.name().into(),
        AdapterMethod::Series => "series".into(),
        AdapterMethod::Parallel => "parallel".into(),
        AdapterMethod::Prefix => "prefix".into(),
    }
}

fn record(src: &RunSource) -> Result<RunRecord> {
    let summary = EvalSummary::read(&src.eval_out)?;
    let curves = match &src.train_out {
        Some(d) if d.join(METRICS).is_file() => {
            crate::eval::report::metrics::read_metrics(&d.join(METRICS))?
        }
        _ => LossCurves::default(),
    };
    let (method, rank, alpha, scaling, scale) = match &src.adapter {
        Some(a) => (
            method_label(a),
            a.rank as u32,
            a.alpha,
            a.scaling.name().to_string(),
            a.scale(),
        ),
        None => ("base".to_string(), 0, 0.0, "none".to_string(), 0.0),
    };
    Ok(RunRecord {
        name: src.eval_job.label.clone(),
        method,
        rank,
        alpha,
        scaling,
        effective_scale: scale,
        seed: src.train_seed.unwrap_or(0),
        protocol: summary.protocol,
        accuracies: summary
            .tasks
            .iter()
            .map(|t| (t.task.clone(), t.accuracy))
            .collect(),
        val_loss: curves.final_val_loss(),
        train_loss: curves.train,
        params_pct: src.params_pct,
        train_seconds: src.train_out.as_deref().and_then(train_seconds),
        outcomes: crate::eval::report::run::read_outcomes(&src.eval_out, &summary)?,
    })
}

/// `elapsed_s` of a train entry's summary (absent in entries that predate it).
fn train_seconds(train_out: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(train_out.join(TRAIN_SUMMARY)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("elapsed_s")?.as_f64()
}

pub fn run(p: &ReportParams, runs: &[RunSource], out: &Path) -> Result<serde_json::Value> {
    if runs.is_empty() {
        return Err(RunError::Plan("report stage has no runs to report".into()));
    }
    let records = runs.iter().map(record).collect::<Result<Vec<_>>>()?;
    let files = write_report(&records, &p.compare, out)?;
    let mut copied = vec![];
    if let Some(dir) = &p.out {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for f in &files {
            if let Some(name) = f.file_name() {
                let to = dir.join(name);
                std::fs::copy(f, &to).map_err(io(f))?;
                copied.push(to.display().to_string());
            }
        }
    }
    Ok(json!({
        "runs": records.len(),
        "files": files.iter().filter_map(|f| f.strip_prefix(out).ok()).map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "copied_to": copied,
    }))
}
