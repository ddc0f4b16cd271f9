//! `rora report`: tables (Markdown, CSV, JSON) and plots (PNG, SVG) from a set of runs.
//!
//! Runs come from run directories (`--run DIR`, each holding `run.json`, see
//! `rora::eval::report::run`) and/or run-record arrays (`--runs-file runs.json`, e.g. a previous
//! report's). The pipeline-driven form (`rora report <pipeline>`) is the report stage runner's job.

use std::path::PathBuf;

use miette::IntoDiagnostic;

use crate::eval::report::{
    build_tables, load_run_dir, load_runs_file, render_markdown, write_report,
};

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// A run directory holding run.json (method, rank, alpha, scaling, seed; paths to the eval
    /// results and the training metrics). Repeatable.
    #[arg(long = "run", value_name = "DIR")]
    pub runs: Vec<PathBuf>,
    /// A JSON array of run records (as a report writes to runs.json). Repeatable.
    #[arg(long = "runs-file", value_name = "FILE")]
    pub runs_files: Vec<PathBuf>,
    /// Output directory for table.{md,csv,json}, runs.json and the plots.
    #[arg(
        long,
        short,
        value_name = "DIR",
        default_value = "report",
        env = "RORA_REPORT_DIR"
    )]
    pub out: PathBuf,
    /// Compare every run with the runs of this method on the same items (paired bootstrap);
    /// default: the report stage's `baseline`.
    #[arg(long)]
    pub baseline: Option<String>,
    /// Bootstrap resamples (default: the report stage's `resamples`).
    #[arg(long)]
    pub resamples: Option<usize>,
}

pub fn run(args: ReportArgs) -> miette::Result<()> {
    let mut runs = Vec::new();
    for f in &args.runs_files {
        runs.extend(load_runs_file(f).into_diagnostic()?);
    }
    for d in &args.runs {
        runs.push(load_run_dir(d).into_diagnostic()?);
    }
    let mut compare = crate::stages::report::default_compare();
    if let Some(b) = &args.baseline {
        compare.baseline = b.clone();
    }
    if let Some(n) = args.resamples {
        compare.resamples = n.max(1);
    }
    let files = write_report(&runs, &compare, &args.out).into_diagnostic()?;
    print!("{}", render_markdown(&build_tables(&runs)));
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
