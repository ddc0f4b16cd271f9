//! `rora job [pipeline] --key K`: compute exactly one planned job against the store and exit.
//! This is what each Slurm job of `rora run --executor slurm` runs; it is also a way to compute
//! one job by hand. Its inputs must be committed already. Exit codes: 0 done (or already in the
//! store), 2 the pipeline does not check or has no job with that key, 3 the job failed, 4 another
//! process holds the key (nothing was done; the head waits for that holder).

use std::path::PathBuf;
use std::process::ExitCode;

use miette::{IntoDiagnostic, miette};

use super::plan::check_and_plan_with;
use super::run::open_device;
use super::{Global, exit};
use crate::cache::{Store, layout};
use crate::exec::{ConsoleReporter, ExecOptions, Selector, jobs_from_plan, run_with_log};
use crate::hub::LazyHub;
use crate::run::PipelineRunner;

#[derive(Debug, clap::Args)]
pub struct JobArgs {
    /// The pipeline file (default: the embedded quickstart pipeline).
    pub pipeline: Option<PathBuf>,
    /// The job's key (full hex, as `rora plan --format json` prints it).
    #[arg(long)]
    pub key: String,
    /// Where to compute: `cpu`, `cuda[:N]` or `auto` (default: the pipeline's `device`).
    #[arg(long, env = "RORA_DEVICE")]
    pub device: Option<String>,
    /// Recompute even when the key is in the store.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: JobArgs, g: &Global) -> miette::Result<ExitCode> {
    let root = layout::resolve_root(g.cache_dir.as_deref());
    let store = Store::open(&root).into_diagnostic()?;
    let plan = match check_and_plan_with(a.pipeline.as_deref(), g, &mut LazyHub::from_env())? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let Some(job) = plan.jobs.iter().find(|j| j.key.hex() == a.key) else {
        eprintln!(
            "{:?}",
            miette!(
                code = "rora::job::unknown-key",
                help = "the pipeline, a file it reads, or a hub revision changed since the job was \
                        planned; plan and submit again",
                "{} has no job with key {}",
                plan.pipeline.display(),
                a.key
            )
        );
        return Ok(ExitCode::from(exit::CHECK_FAILED));
    };
    println!(
        "job {} [{} {}]",
        job.label,
        job.kind.name(),
        job.key.short()
    );
    if !a.force && store.held_elsewhere(&a.key).into_diagnostic()? {
        println!("another process holds {}: nothing to do here", job.label);
        return Ok(ExitCode::from(exit::BUSY));
    }
    let device = match open_device(a.device.as_deref(), &plan) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e:?}");
            return Ok(ExitCode::from(exit::CHECK_FAILED));
        }
    };
    let only = Selector {
        stage: job.stage.clone(),
        point: job
            .point
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    };
    let options = ExecOptions {
        only: vec![only.clone()],
        force: if a.force { vec![only] } else { vec![] },
        ..ExecOptions::default()
    };
    let jobs = jobs_from_plan(&plan);
    let runner = PipelineRunner::new(&plan, &store, device);
    let session = run_with_log(
        &store,
        &runner,
        &jobs,
        options,
        Some(ConsoleReporter::new(Box::new(std::io::stdout()), false)),
        vec![],
    )
    .map_err(|e| miette!(code = "rora::job", "{e}"))?;
    Ok(ExitCode::from(match session.summary.exit_code() {
        0 => exit::OK,
        _ => exit::STAGE_FAILED,
    }))
}
