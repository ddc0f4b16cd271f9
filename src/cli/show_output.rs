//! `rora show-output <stage>[@point] [pipeline]`: where a job's artifacts are, and what they are.

use std::path::PathBuf;
use std::process::ExitCode;

use super::plan::check_and_plan;
use super::{Format, Global, exit};
use crate::cache::{Probe, Store, layout};

#[derive(Debug, clap::Args)]
pub struct ShowOutputArgs {
    /// The job: `stage` or `stage@k=v,...` (e.g. `ft@rank=8,scaling=rora`).
    pub job: String,
    /// The pipeline file (default: the embedded quickstart pipeline).
    pub pipeline: Option<PathBuf>,
}

pub fn run(a: ShowOutputArgs, g: &Global) -> miette::Result<ExitCode> {
    let plan = match check_and_plan(a.pipeline.as_deref(), g)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let Some(job) = plan.find(&a.job) else {
        let (stage, _) = a.job.split_once('@').unwrap_or((&a.job, ""));
        let labels: Vec<String> = plan.stage_jobs(stage).map(|j| j.label.clone()).collect();
        eprintln!(
            "error: `{}` names no single job{}",
            a.job,
            if labels.is_empty() {
                String::new()
            } else {
                format!("; the jobs of `{stage}` are:\n  {}", labels.join("\n  "))
            }
        );
        return Ok(ExitCode::from(exit::CHECK_FAILED));
    };
    let root = layout::resolve_root(g.cache_dir.as_deref());
    let store = Store::open_read_only(&root);
    match store
        .probe(job.key.hex())
        .map_err(|e| miette::miette!("{e}"))?
    {
        Probe::Valid(entry) => {
            // What the stage said about its outputs (counts, metrics, ...).
            let meta = &entry.manifest().meta;
            let outputs = meta.get("outputs").unwrap_or(meta);
            let notes = crate::run::artifacts::notes(&entry);
            if g.format == Some(Format::Json) {
                let files: Vec<serde_json::Value> = entry
                    .manifest()
                    .files
                    .iter()
                    .map(|f| serde_json::json!({"path": f.path, "size": f.size}))
                    .collect();
                let line = serde_json::json!({
                    "job": job.label,
                    "kind": job.kind.name(),
                    "key": job.key.to_string(),
                    "output": entry.out_dir(),
                    "files": files,
                    "summary": outputs,
                    "notes": notes,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&line).map_err(|e| miette::miette!("{e}"))?
                );
                return Ok(ExitCode::from(exit::OK));
            }
            println!("job:     {} ({})", job.label, job.kind.name());
            println!("key:     {}", job.key);
            println!("output:  {}", entry.out_dir().display());
            for f in &entry.manifest().files {
                println!(
                    "  {:>10}  {}",
                    crate::exec::console::human_bytes(f.size),
                    f.path
                );
            }
            if !outputs.is_null() {
                let text = serde_json::to_string_pretty(outputs).unwrap_or_default();
                println!("summary: {text}");
            }
            for n in &notes {
                println!("note:    {n}");
            }
            Ok(ExitCode::from(exit::OK))
        }
        Probe::Absent => {
            eprintln!(
                "`{}` is not in the cache ({}): run the pipeline first",
                job.label,
                root.display()
            );
            Ok(ExitCode::from(exit::STAGE_FAILED))
        }
        Probe::Corrupt(d) => {
            eprintln!(
                "`{}`: the cache entry is corrupt ({d}); `rora run` recomputes it",
                job.label
            );
            Ok(ExitCode::from(exit::STAGE_FAILED))
        }
    }
}
