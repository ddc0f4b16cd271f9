//! `rora explain <code>`: What / Why / Example / Fix of a diagnostic code.
//! `rora explain <stage>[@point] [pipeline]`: the key of that job, its components, and whether it is
//! committed in the cache. (Diffing against the previous run's manifest belongs to the cache.)

use std::path::PathBuf;
use std::process::ExitCode;

use super::plan::{check_and_plan, scale_text};
use super::{Global, exit};
use crate::cache::layout::{is_committed, resolve_root};
use crate::diag::Code;
use crate::diag::codes::explain;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// A diagnostic code (`rora::shape::arity` or `arity`), or a job: `stage` or `stage@rank=8,method=lora`.
    pub what: String,
    /// The pipeline file, for a job (default: the embedded quickstart pipeline).
    pub pipeline: Option<PathBuf>,
}

pub fn run(args: ExplainArgs, g: &Global) -> miette::Result<ExitCode> {
    if args.pipeline.is_none() {
        if let Some(code) = Code::from_name(&args.what) {
            print!("{}", explain(code));
            return Ok(ExitCode::from(exit::OK));
        }
        if args.what.starts_with("rora::") {
            let names: Vec<&str> = Code::ALL.iter().map(|c| c.name()).collect();
            eprintln!(
                "error: unknown code `{}`; {}",
                args.what,
                crate::diag::suggest_help(&args.what, &names, "codes are")
            );
            return Ok(ExitCode::from(exit::CHECK_FAILED));
        }
    }
    let plan = match check_and_plan(args.pipeline.as_deref(), g)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let Some(job) = plan.find(&args.what) else {
        let stage = args.what.split('@').next().unwrap_or_default();
        let labels: Vec<&str> = plan.stage_jobs(stage).map(|j| j.label.as_str()).collect();
        if labels.is_empty() {
            let mut stages: Vec<&str> = plan.jobs.iter().map(|j| j.stage.as_str()).collect();
            stages.dedup();
            eprintln!(
                "error: no stage `{stage}` in {}; {}",
                plan.pipeline.display(),
                crate::diag::suggest_help(stage, &stages, "stages are")
            );
        } else {
            eprintln!(
                "error: `{}` names no single job; the jobs of `{stage}` are:\n  {}",
                args.what,
                labels.join("\n  ")
            );
        }
        return Ok(ExitCode::from(exit::CHECK_FAILED));
    };
    let root = resolve_root(g.cache_dir.as_deref());
    let committed = is_committed(&root, job.key.hex());
    println!("job:       {} ({})", job.label, job.kind.name());
    println!("key:       {}", job.key);
    println!("cached:    {}", if committed { "yes" } else { "no" });
    let scale = scale_text(job);
    if !scale.is_empty() {
        println!("scale:     {scale}");
    }
    for d in &job.deps {
        let dj = plan.job(d.job);
        println!("needs:     {} = {} ({})", d.role, dj.label, dj.key.short());
    }
    if committed {
        println!(
            "output:    {}",
            crate::cache::layout::out_dir(&root, job.key.hex()).display()
        );
    } else if root.is_dir() {
        explain_miss(&root, job)?;
    }
    let fp = serde_json::to_string_pretty(&job.fingerprint).map_err(|e| miette::miette!("{e}"))?;
    println!("key components (blake3 of the canonical JSON):\n{fp}");
    Ok(ExitCode::from(exit::OK))
}

/// For a miss: which key components differ from the nearest stored entry of the same stage.
fn explain_miss(root: &std::path::Path, job: &crate::plan::Job) -> miette::Result<()> {
    let store = crate::cache::Store::open_read_only(root);
    let fp = serde_json::to_value(&job.fingerprint).map_err(|e| miette::miette!("{e}"))?;
    match crate::cache::explain::nearest(&store, &job.stage, &fp)
        .map_err(|e| miette::miette!("{e}"))?
    {
        None => println!("nearest:   no stored entry of stage `{}`", job.stage),
        Some(n) => {
            let stage = n
                .entry
                .manifest
                .as_ref()
                .map(|m| m.stage.clone())
                .unwrap_or_default();
            println!(
                "nearest:   {} ({}), {} component(s) differ:",
                stage,
                &n.entry.key[..12.min(n.entry.key.len())],
                n.changes.len()
            );
            for c in &n.changes {
                println!(
                    "  {}: {} -> {}",
                    c.path,
                    c.stored.as_deref().unwrap_or("(absent)"),
                    c.now.as_deref().unwrap_or("(absent)")
                );
            }
        }
    }
    Ok(())
}
