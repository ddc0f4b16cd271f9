//! `rora plan [pipeline]`: the jobs after sweep expansion, with their dependencies, key prefixes,
//! effective adapter scale, and whether each is already in the cache (read-only lookup); then the
//! memory estimate of each train job against the device's memory, with a warning for each job
//! that does not fit. `--device cuda` that cannot be opened (no `cuda` feature, no GPU) is an
//! error (exit 2); a pipeline's own `device "cuda"` that cannot be opened is a warning here (plan
//! is for inspection) and an error in `rora run`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use super::{Format, Global, exit, load, print_diagnostics};
use crate::cache::layout::{is_committed, resolve_root};
use crate::device::{DeviceInfo, DeviceSpec};
use crate::hub::LazyHub;
use crate::plan::job_memory::{JobMemory, pipeline_device, plan_memory};
use crate::plan::memory::{human, parse_size};
use crate::plan::{DigestMemo, HubResolver, Job, Plan, plan_with};
use crate::stages::adapter::{AdapterParams, AdapterSettings, AdapterSource, AlphaPolicy};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The pipeline file (default: the embedded quickstart pipeline).
    pub pipeline: Option<PathBuf>,
    /// The device to plan for: `cpu`, `cuda[:N]` or `auto` (default: the pipeline's `device`).
    #[arg(long, env = "RORA_DEVICE")]
    pub device: Option<String>,
    /// The device's memory for the estimate (`80GB`, `141GiB`, or `h100`, `h200`, `a100-80`, ...);
    /// default: what the device reports (RAM for the CPU).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// With `--executor slurm`: the `sbatch` command of every job that would be submitted.
    #[command(flatten)]
    pub slurm: super::slurm::SlurmArgs,
}

/// The device a run or plan uses: the command line's, else the pipeline's.
pub struct PlanDevice {
    pub spec: DeviceSpec,
    /// From `--device` (errors are fatal) rather than the pipeline (warnings in `plan`).
    pub explicit: bool,
}

/// Parse the device named by `flag`, else by the pipeline's model stages.
pub fn plan_device(flag: Option<&str>, plan: &Plan) -> miette::Result<PlanDevice> {
    let (text, explicit) = match flag {
        Some(f) => (f.to_string(), true),
        None => (pipeline_device(plan), false),
    };
    let spec =
        DeviceSpec::parse(&text).map_err(|e| miette::miette!(code = "rora::cli::device", "{e}"))?;
    Ok(PlanDevice { spec, explicit })
}

/// The memory section of `rora plan`: one line per train job, a warning per job over `limit`.
pub fn render_memory(jobs: &[JobMemory], device: &str, limit: Option<u64>) -> String {
    if jobs.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "memory per train job on {device} ({}):\n",
        limit.map_or("device memory unknown".to_string(), |l| format!(
            "{} available",
            human(l)
        ))
    );
    for j in jobs {
        let e = &j.estimate;
        out.push_str(&format!(
            "{:>4}  {}: {} = weights {} + adapters {} + grads {} + optimizer {} + activations {}\n",
            j.job,
            j.label,
            human(j.total),
            human(e.weights),
            human(e.adapters),
            human(e.gradients),
            human(e.optimizer),
            human(e.activations)
        ));
    }
    if let Some(l) = limit {
        for j in jobs.iter().filter(|j| j.total > l) {
            out.push_str(&format!(
                "warning: job #{} `{}` needs about {} but {device} has {}: lower micro-batch or max-len, or use a larger device\n",
                j.job,
                j.label,
                human(j.total),
                human(l)
            ));
        }
    }
    out
}

/// Each train job's trainable parameters as PEFT's `print_trainable_parameters` and the papers'
/// `# Params (%)` give them: of all parameters, base + adapter.
pub fn render_trainable(jobs: &[JobMemory]) -> String {
    if jobs.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("trainable parameters per train job (% of base + adapter, as PEFT prints):\n");
    for j in jobs {
        out.push_str(&format!(
            "{:>4}  {}: {} of {} ({:.2}%)\n",
            j.job,
            j.label,
            thousands(j.trainable_params),
            thousands(j.base_params + j.trainable_params),
            j.trainable_percent()
        ));
    }
    out
}

/// `56,098,816`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Where the file-digest memo lives: beside the entries, and only once the cache exists.
pub fn memo_path(root: &Path) -> PathBuf {
    root.join(crate::cache::layout::LAYOUT_VERSION)
        .join("digests.json")
}

/// Check and plan a pipeline file (the embedded quickstart when `None`); `Err(code)` when it does
/// not check. Hub revisions that cannot be resolved are keyed by name, with a warning (read-only
/// commands); `rora run` uses [`check_and_plan_with`] and a strict resolver.
pub fn check_and_plan(path: Option<&Path>, g: &Global) -> miette::Result<Result<Plan, ExitCode>> {
    check_and_plan_with(path, g, &mut LazyHub::lenient_from_env())
}

/// [`check_and_plan`] with hub sources keyed by the commit `hub` resolves them to.
pub fn check_and_plan_with(
    path: Option<&Path>,
    g: &Global,
    hub: &mut dyn HubResolver,
) -> miette::Result<Result<Plan, ExitCode>> {
    let r = load(path)?;
    let format = g.format();
    if r.has_errors() || format == Format::Json {
        print_diagnostics(
            &r,
            if r.has_errors() {
                format
            } else {
                Format::Plain
            },
        );
    } else {
        print_diagnostics(&r, format);
    }
    let Some(p) = r.pipeline else {
        return Ok(Err(ExitCode::from(exit::CHECK_FAILED)));
    };
    let root = resolve_root(g.cache_dir.as_deref());
    let memo_file = memo_path(&root);
    let mut memo = DigestMemo::load(&memo_file);
    // Hub sources are keyed by the commit their revision resolves to (see `plan::resolve`).
    let plan =
        plan_with(&p, &mut memo, hub).map_err(|e| miette::miette!(code = "rora::plan", "{e}"))?;
    if root.is_dir() {
        // The memo only speeds up later plans; failing to write it is not an error.
        let _ = memo.save(&memo_file);
    }
    Ok(Ok(plan))
}

/// `s=2.0000 (rora alpha=16 r=64)` or `s=2.0000 (lora alpha=2r=16 r=8)` for adapter jobs.
pub fn scale_text(j: &Job) -> String {
    let Some(p) = j.params.get::<AdapterParams>() else {
        return String::new();
    };
    let loaded = match &p.source {
        AdapterSource::Fresh => "",
        AdapterSource::Path(_) => "PEFT folder, ",
        AdapterSource::Hub { .. } => "PEFT hub adapter, ",
    };
    match p.settings() {
        Some(a) if a.method == crate::stages::adapter::AdapterMethod::Prefix => {
            format!("({loaded}prefix of {} virtual tokens)", a.rank)
        }
        Some(a) if a.method.is_bottleneck() => format!(
            "s={:.4} ({loaded}{} {} bottleneck={} {})",
            a.scale(),
            a.method.name(),
            a.scaling.name(),
            a.rank,
            a.activation.name()
        ),
        Some(a) => {
            let policy = match a.alpha_policy {
                AlphaPolicy::Fixed(_) => String::new(),
                AlphaPolicy::PerRank(k) => format!("{k}r="),
            };
            format!(
                "s={:.4} ({loaded}{} alpha={}{} r={})",
                a.scale(),
                a.scaling.name(),
                policy,
                a.alpha,
                a.rank
            )
        }
        None => format!("({loaded}settings read at run time)"),
    }
}

#[derive(Serialize)]
struct JsonJob<'a> {
    #[serde(flatten)]
    job: &'a Job,
    cached: bool,
    scale: Option<f64>,
}

pub fn run(args: PlanArgs, g: &Global) -> miette::Result<ExitCode> {
    let plan = match check_and_plan(args.pipeline.as_deref(), g)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let root = resolve_root(g.cache_dir.as_deref());
    let pd = plan_device(args.device.as_deref(), &plan)?;
    let mut warnings = vec![];
    let device = match pd.spec.open() {
        Ok(d) => Some(d),
        // For Slurm the device is opened on the nodes, not here (a login node has no GPU).
        Err(e) if pd.explicit && args.slurm.executor != super::slurm::ExecutorKind::Slurm => {
            eprintln!("{:?}", miette::miette!(code = "rora::cli::device", "{e}"));
            return Ok(ExitCode::from(exit::CHECK_FAILED));
        }
        // the nodes open it: nothing to warn about here
        Err(_) if args.slurm.executor == super::slurm::ExecutorKind::Slurm => None,
        Err(e) => {
            warnings.push(format!(
                "warning: {e}; `rora run` will fail unless --device says otherwise"
            ));
            None
        }
    };
    let info = device.as_ref().map(DeviceInfo::query);
    let limit = match &args.memory {
        Some(m) => {
            Some(parse_size(m).map_err(|e| miette::miette!(code = "rora::cli::memory", "{e}"))?)
        }
        None => info.as_ref().and_then(|i| i.total_bytes),
    };
    let label = info
        .as_ref()
        .map_or(pd.spec.to_string(), |i| format!("{} ({})", i.label, i.name));
    let memory = plan_memory(&plan);
    if g.format == Some(Format::Json) {
        let jobs: Vec<JsonJob> = plan
            .jobs
            .iter()
            .map(|j| JsonJob {
                job: j,
                cached: is_committed(&root, j.key.hex()),
                scale: j
                    .params
                    .get::<AdapterParams>()
                    .and_then(AdapterParams::settings)
                    .map(AdapterSettings::scale),
            })
            .collect();
        let out = serde_json::json!({
            "pipeline": plan.pipeline,
            "cache": root,
            "jobs": jobs,
            "device": label,
            "device_memory": limit,
            "memory": memory,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| miette::miette!("{e}"))?
        );
        return Ok(ExitCode::from(exit::OK));
    }
    print!("{}", render_text(&plan, &root));
    print!("{}", render_memory(&memory, &label, limit));
    print!("{}", render_trainable(&memory));
    let settings =
        if args.slurm.executor == super::slurm::ExecutorKind::Slurm || args.slurm.rate.is_some() {
            Some(args.slurm.settings()?)
        } else {
            None
        };
    print!(
        "{}",
        render_work(&plan, settings.as_ref().and_then(|s| s.rate))
    );
    if args.slurm.executor == super::slurm::ExecutorKind::Slurm {
        print!(
            "{}",
            render_sbatch(&plan, &root, &args, &pd.spec.to_string())?
        );
    }
    for w in warnings {
        eprintln!("{w}");
    }
    Ok(ExitCode::from(exit::OK))
}

/// The work of each train job whose model shape is known, and with a measured `rate` (FLOP/s)
/// its time: `4 x weights x steps x batch x max-len` (an upper bound: every row at `max-len`).
pub fn render_work(plan: &Plan, rate: Option<f64>) -> String {
    let mut out = String::new();
    for j in &plan.jobs {
        let Some(flops) = crate::stages::get(j.kind).and_then(|s| s.flops(plan, j)) else {
            continue;
        };
        if out.is_empty() {
            out.push_str(&match rate {
                Some(r) => format!(
                    "work per train job (4 x weights x steps x batch x max-len) at {:.3e} FLOP/s:\n",
                    r
                ),
                None => "work per train job (4 x weights x steps x batch x max-len; --rate gives times):\n".to_string(),
            });
        }
        let time = rate.map_or(String::new(), |r| {
            let m = (flops / r / 60.0).ceil() as u64;
            format!("  ~{}h{:02}m", m / 60, m % 60)
        });
        out.push_str(&format!(
            "{:>4}  {}: {:.3e} FLOP{time}\n",
            j.id.0, j.label, flops
        ));
    }
    out
}

/// `rora plan --executor slurm`: the `sbatch` line of each job that is not in the store, as the
/// head would submit it once the job's inputs are committed (`RUN` stands for the run's tag).
fn render_sbatch(
    plan: &Plan,
    root: &Path,
    args: &PlanArgs,
    device: &str,
) -> miette::Result<String> {
    let settings = args.slurm.settings()?;
    let needs = super::slurm::job_needs(plan, device);
    let worker = super::slurm::Worker::new(
        &settings,
        root,
        args.pipeline.as_deref(),
        args.device.as_deref(),
    )?;
    let jobs = crate::exec::jobs_from_plan(plan);
    let logs = crate::cache::layout::slurm_logs_dir(root, "RUN");
    let mut out = String::from(
        "sbatch per job to compute (each submitted when its inputs are committed; RUN is the run's tag):\n",
    );
    let mut any = false;
    for job in jobs.iter().filter(|j| !is_committed(root, &j.key)) {
        let sub = crate::slurm::head::submission(
            &format!("{}RUN", crate::slurm::command::NAME_PREFIX),
            root,
            &logs,
            &settings,
            &needs[job.id],
            job,
            worker.command(job, false),
        );
        out.push_str(&format!(
            "{:>4}  {}\n      {}\n",
            job.id,
            job.label,
            crate::slurm::sbatch_line(&settings, &sub)
        ));
        any = true;
    }
    if !any {
        out.push_str("      nothing: every job is in the store\n");
    }
    Ok(out)
}

/// The text table of `rora plan`.
pub fn render_text(plan: &Plan, root: &Path) -> String {
    let cached = plan
        .jobs
        .iter()
        .filter(|j| is_committed(root, j.key.hex()))
        .count();
    let width = plan
        .jobs
        .iter()
        .map(|j| j.label.len())
        .max()
        .unwrap_or(3)
        .max(3);
    let mut out = format!(
        "{}: {} jobs, {} cached (cache: {})\n",
        plan.pipeline.display(),
        plan.jobs.len(),
        cached,
        root.display()
    );
    out.push_str(&format!(
        "{:>4}  {:<width$}  {:<7}  {:<12}  {:<6}  {}\n",
        "#", "job", "kind", "key", "cached", "needs / scale"
    ));
    for j in &plan.jobs {
        let deps: Vec<String> = j.deps.iter().map(|d| format!("#{}", d.job.0)).collect();
        let mut extra = if deps.is_empty() {
            String::new()
        } else {
            deps.join(" ")
        };
        let scale = scale_text(j);
        if !scale.is_empty() {
            extra = if extra.is_empty() {
                scale
            } else {
                format!("{extra}  {scale}")
            };
        }
        let c = if is_committed(root, j.key.hex()) {
            "yes"
        } else {
            "no"
        };
        out.push_str(
            format!(
                "{:>4}  {:<width$}  {:<7}  {:<12}  {:<6}  {}\n",
                j.id.0,
                j.label,
                j.kind.name(),
                j.key.short(),
                c,
                extra
            )
            .trim_end(),
        );
        out.push('\n');
    }
    out
}
