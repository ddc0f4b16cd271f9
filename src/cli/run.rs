//! `rora run [pipeline]`: check, plan, then compute every job that is not cached, in dependency
//! order, committing each output to the store. Exit 2 when the pipeline does not check, 3 when a
//! stage failed.

use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::Device;
use miette::{IntoDiagnostic, miette};

use super::plan::{check_and_plan_with, plan_device};
use super::slurm::{ExecutorKind, SlurmArgs, Worker, job_needs};
use super::{Global, exit};
use crate::cache::{Store, layout};
use crate::exec::{
    ConsoleReporter, ExecOptions, JsonlReporter, Reporters, Selector, jobs_from_plan, run_with_log,
};
use crate::hub::LazyHub;
use crate::model::ops::LayerPath;
use crate::run::{Knobs, PipelineRunner};
use crate::train::TrainKnobs;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The pipeline file (default: the embedded quickstart pipeline).
    pub pipeline: Option<PathBuf>,
    /// Show what would run; compute nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run only these jobs (`stage` or `stage@k=v,...`, repeatable); their inputs must be cached.
    #[arg(long, value_name = "JOB")]
    pub only: Vec<String>,
    /// Run these jobs and what they need, nothing after them (repeatable).
    #[arg(long, value_name = "JOB")]
    pub until: Vec<String>,
    /// Recompute these jobs even when cached (repeatable).
    #[arg(long, value_name = "JOB")]
    pub force: Vec<String>,
    /// After a failed job, go on with the jobs that do not depend on it.
    #[arg(long)]
    pub keep_going: bool,
    /// Where to compute: `cpu`, `cuda[:N]` (needs the `cuda` feature) or `auto`
    /// (default: the pipeline's `device`, whose default is `auto`).
    #[arg(long, env = "RORA_DEVICE")]
    pub device: Option<String>,
    /// Decoder layers in training: `auto` (the fused op where it applies) or `composed`.
    #[arg(long, value_enum, default_value = "auto", help_heading = AB)]
    pub layer_path: LayerPath,
    /// Every micro-batch in one pass padded to its longest row (no length groups).
    #[arg(long, help_heading = AB)]
    pub whole_batches: bool,
    /// The output projection and cross-entropy at every position, not only at loss positions.
    #[arg(long, help_heading = AB)]
    pub full_logits: bool,
    /// Append every training step's micro-batches (token ids, mask, labels) as JSON lines to FILE,
    /// for a peer to train on the same batches (`scripts/bench_train_real.py`).
    #[arg(long, value_name = "FILE", help_heading = AB)]
    pub dump_batches: Option<PathBuf>,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// The heading of the switches that change results only by rounding (not part of any key;
/// recorded in a train job's manifest).
const AB: &str = "A/B switches (same results up to rounding; not part of any key)";

impl RunArgs {
    pub fn knobs(&self) -> Knobs {
        Knobs {
            layer_path: self.layer_path,
            train: TrainKnobs {
                whole_batches: self.whole_batches,
                full_logits: self.full_logits,
                dump_batches: self.dump_batches.clone(),
            },
        }
    }
}

fn selectors(specs: &[String]) -> miette::Result<Vec<Selector>> {
    specs
        .iter()
        .map(|s| Selector::parse(s).map_err(|e| miette!(code = "rora::cli::selector", "{e}")))
        .collect()
}

/// The compute device: `--device`, else the pipeline's model stages' `device`. Not openable
/// (`cuda` without the feature or without a GPU) is an error before anything runs.
pub fn open_device(flag: Option<&str>, plan: &crate::plan::Plan) -> miette::Result<Device> {
    let pd = super::plan::plan_device(flag, plan)?;
    pd.spec.open().map_err(|e| {
        miette!(
            code = "rora::cli::device",
            help = "build with `--features cuda` (README, \"GPU\") on a machine with a GPU, or pass --device cpu",
            "{e}"
        )
    })
}

pub fn run(a: RunArgs, g: &Global) -> miette::Result<ExitCode> {
    // Open (create) the store first so planning can save its file-digest memo there.
    let root = layout::resolve_root(g.cache_dir.as_deref());
    let store = Store::open(&root).into_diagnostic()?;
    // Strict: a hub revision that cannot be pinned to a commit stops the run before anything runs.
    let plan = match check_and_plan_with(a.pipeline.as_deref(), g, &mut LazyHub::from_env())? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let options = ExecOptions {
        dry_run: a.dry_run,
        only: selectors(&a.only)?,
        until: selectors(&a.until)?,
        force: selectors(&a.force)?,
        keep_going: a.keep_going,
    };
    if a.slurm.executor == ExecutorKind::Slurm && !a.dry_run {
        return run_slurm(&a, &store, &plan, options);
    }
    let device = if a.dry_run && a.slurm.executor == ExecutorKind::Slurm {
        // a dry run computes nothing, and the nodes, not this login node, open the device
        Device::Cpu
    } else {
        match open_device(a.device.as_deref(), &plan) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{e:?}");
                return Ok(ExitCode::from(exit::CHECK_FAILED));
            }
        }
    };
    let jobs = jobs_from_plan(&plan);
    let runner = PipelineRunner::new(&plan, &store, device).with_knobs(a.knobs());
    let session = run_with_log(
        &store,
        &runner,
        &jobs,
        options,
        Some(ConsoleReporter::stdout()),
        vec![],
    )
    .map_err(|e| miette!(code = "rora::run", "{e}"))?;
    println!("event log: {}", session.log.display());
    Ok(ExitCode::from(match session.summary.exit_code() {
        0 => exit::OK,
        _ => exit::STAGE_FAILED,
    }))
}

/// `rora run --executor slurm`: this process is the head; each job to compute is a Slurm job
/// running `rora job`. The device is not opened here (a login node has no GPU): the jobs open it.
fn run_slurm(
    a: &RunArgs,
    store: &Store,
    plan: &crate::plan::Plan,
    options: ExecOptions,
) -> miette::Result<ExitCode> {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    let settings = a.slurm.settings()?;
    if let Err(e) = crate::slurm::check_store(store.root()) {
        eprintln!("{:?}", miette!(code = "rora::slurm::store", "{e}"));
        return Ok(ExitCode::from(exit::CHECK_FAILED));
    }
    let device = plan_device(a.device.as_deref(), plan)?.spec.to_string();
    let needs = job_needs(plan, &device);
    let worker = Worker::new(
        &settings,
        store.root(),
        a.pipeline.as_deref(),
        a.device.as_deref(),
    )?;
    let interrupt = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&interrupt))
            .map_err(|e| miette!(code = "rora::slurm", "cannot handle signal {sig}: {e}"))?;
    }
    let name = crate::slurm::run_name();
    let log = JsonlReporter::create_in(&layout::runs_dir(store.root()))
        .map_err(|e| miette!(code = "rora::run", "{e}"))?;
    let log_path = log.path().to_path_buf();
    let mut reporters = Reporters::new();
    reporters.push(log);
    reporters.push(ConsoleReporter::new(Box::new(std::io::stdout()), false));
    let logs = layout::slurm_logs_dir(store.root(), &name);
    println!("slurm run {name}: job logs in {}", logs.display());
    let head = crate::slurm::Head {
        store,
        cluster: &crate::slurm::SlurmCli,
        settings: &settings,
        reporters: &reporters,
        options,
        needs: &needs,
        worker: &|job, forced| worker.command(job, forced),
        name,
        logs,
        interrupt: &interrupt,
    };
    let jobs = jobs_from_plan(plan);
    let result = head
        .run(&jobs)
        .map_err(|e| miette!(code = "rora::run", "{e}"))?;
    println!("event log: {}", log_path.display());
    Ok(ExitCode::from(if result.interrupted {
        exit::INTERRUPTED
    } else if result.summary.exit_code() == 0 {
        exit::OK
    } else {
        exit::STAGE_FAILED
    }))
}
