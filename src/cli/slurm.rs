//! The command line of the Slurm executor, shared by `rora run` and `rora plan`: `--executor`,
//! the site flags, the profile, and what the head needs per job (resources and the worker
//! command it submits).

use std::path::{Path, PathBuf};

use miette::miette;

use crate::exec::JobSpec;
use crate::plan::Plan;
use crate::plan::job::StageResources;
use crate::plan::job_memory::plan_memory;
use crate::slurm::settings::Target;
use crate::slurm::units::{parse_mem, parse_minutes};
use crate::slurm::{GpuFlag, JobNeeds, Override, Settings, default_profile};
use crate::stages;

/// Where a run's jobs are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExecutorKind {
    /// In this process, one job at a time.
    #[default]
    Local,
    /// As Slurm jobs (`sbatch`), one per job that is not in the store; the store must be shared.
    Slurm,
}

const SLURM: &str = "Slurm executor (also in the profile; docs/SLURM.md)";

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SlurmArgs {
    /// Where jobs run: `local` (this process) or `slurm` (one Slurm job per job to compute).
    #[arg(long, value_enum, default_value = "local")]
    pub executor: ExecutorKind,
    /// The site profile (KDL; default: $XDG_CONFIG_HOME/rora/slurm.kdl when it exists).
    #[arg(long, value_name = "FILE", env = "RORA_SLURM_PROFILE", help_heading = SLURM)]
    pub slurm_profile: Option<PathBuf>,
    /// `sbatch --partition`.
    #[arg(long, help_heading = SLURM)]
    pub partition: Option<String>,
    /// `sbatch --account`.
    #[arg(long, help_heading = SLURM)]
    pub account: Option<String>,
    /// `sbatch --qos`.
    #[arg(long, help_heading = SLURM)]
    pub qos: Option<String>,
    /// An extra `sbatch` argument, as it is (repeatable), e.g. `--sbatch=--constraint=a100`.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true, help_heading = SLURM)]
    pub sbatch: Vec<String>,
    /// At most this many jobs of this run queued or running at once.
    #[arg(long, value_name = "N", help_heading = SLURM)]
    pub max_jobs: Option<usize>,
    /// How often to poll `squeue` and the store (`2s`, `500ms`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = SLURM)]
    pub poll: Option<std::time::Duration>,
    /// Resubmit a job that a node failure or preemption ended, up to N times.
    #[arg(long, value_name = "N", help_heading = SLURM)]
    pub retries: Option<u32>,
    /// How jobs ask for GPUs: `--gres=gpu:N` or `--gpus=N`.
    #[arg(long, value_name = "gres|gpus", help_heading = SLURM)]
    pub gpu_flag: Option<String>,
    /// Resources of some jobs: `STAGE:key=value,...` or `kind=KIND:...`, keys `cpus`, `mem`
    /// (`64G`), `time` (`6h`, or minutes), `gpus` (repeatable; after the profile's).
    #[arg(long, value_name = "SPEC", help_heading = SLURM)]
    pub resources: Vec<String>,
    /// Training FLOP/s of the nodes' device (`train_flops_per_s` of `rora bench train` there,
    /// e.g. `120T`): train jobs get their time limit from their work over it.
    #[arg(long, value_name = "FLOP/S", help_heading = SLURM)]
    pub rate: Option<String>,
}

impl SlurmArgs {
    /// The profile (when there is one) with the flags applied.
    pub fn settings(&self) -> miette::Result<Settings> {
        let profile = match &self.slurm_profile {
            Some(p) => Some(p.clone()),
            None => default_profile().filter(|p| p.is_file()),
        };
        let mut s = match profile {
            Some(p) => Settings::from_profile(&p)
                .map_err(|e| miette!(code = "rora::slurm::profile", "{e}"))?,
            None => Settings::default(),
        };
        if let Some(v) = &self.partition {
            s.partition = Some(v.clone());
        }
        if let Some(v) = &self.account {
            s.account = Some(v.clone());
        }
        if let Some(v) = &self.qos {
            s.qos = Some(v.clone());
        }
        s.sbatch.extend(self.sbatch.iter().cloned());
        if let Some(n) = self.max_jobs {
            s.max_jobs = n.max(1);
        }
        if let Some(p) = self.poll {
            s.poll = p;
        }
        if let Some(r) = self.retries {
            s.retries = r;
        }
        if let Some(f) = &self.gpu_flag {
            s.gpu_flag = GpuFlag::from_name(f).ok_or_else(|| {
                miette!(
                    code = "rora::slurm::gpu-flag",
                    "--gpu-flag {f}: expected one of {:?}",
                    GpuFlag::NAMES
                )
            })?;
        }
        if let Some(r) = &self.rate {
            s.rate = Some(
                crate::slurm::settings::parse_rate(r)
                    .map_err(|e| miette!(code = "rora::slurm::rate", "--rate: {e}"))?,
            );
        }
        for r in &self.resources {
            s.flag_overrides.push(
                Override::parse(r).map_err(|e| miette!(code = "rora::slurm::resources", "{e}"))?,
            );
        }
        Ok(s)
    }
}

/// What sizes each job of `plan` (indexed like its jobs): whether it computes on the device,
/// whether that is a GPU, and its memory estimate.
pub fn job_needs(plan: &Plan, device: &str) -> Vec<JobNeeds> {
    let memory = plan_memory(plan);
    let cuda = device.starts_with("cuda");
    plan.jobs
        .iter()
        .map(|j| JobNeeds {
            stage: j.stage.clone(),
            kind: j.kind.name().to_string(),
            accelerated: stages::get(j.kind).is_some_and(|s| s.accelerated()),
            cuda,
            memory: memory
                .iter()
                .find(|m| m.job == j.id.0)
                .map(|m| m.total)
                .or_else(|| model_bytes(plan, j)),
            flops: stages::get(j.kind).and_then(|s| s.flops(plan, j)),
            declared: j.resources.as_ref().map(|r| declared(&j.stage, r)),
        })
        .collect()
}

/// A model job loads the weights and writes them out: its memory is the weights in f32, when the
/// shape is known offline (a random preset, a local file, a known hub id).
fn model_bytes(plan: &Plan, j: &crate::plan::Job) -> Option<u64> {
    if j.kind != crate::schema::Kind::Model {
        return None;
    }
    let c = stages::train::memory::model_shape(plan, j)?;
    Some(crate::plan::memory::base_params(&c) * 4)
}

/// A stage's `resources` as an override of its jobs (checked: mem and time parse).
fn declared(stage: &str, r: &StageResources) -> Override {
    let mut o = Override::new(Target::Stage(stage.to_string()));
    o.cpus = r.cpus;
    o.gpus = r.gpus;
    o.mem = r.mem.as_deref().and_then(|m| parse_mem(m).ok());
    o.time = r.time.as_deref().and_then(|t| parse_minutes(t).ok());
    o
}

/// The command a Slurm job runs for one job: `rora --cache-dir C job [P] --key K [--device D]
/// [--force]`. `pipeline` is `None` for the embedded quickstart.
pub struct Worker {
    pub rora: PathBuf,
    pub cache: PathBuf,
    pub pipeline: Option<PathBuf>,
    pub device: Option<String>,
}

impl Worker {
    pub fn new(
        settings: &Settings,
        cache: &Path,
        pipeline: Option<&Path>,
        device: Option<&str>,
    ) -> miette::Result<Worker> {
        let rora = match &settings.rora {
            Some(r) => r.clone(),
            None => std::env::current_exe()
                .map_err(|e| miette!(code = "rora::slurm", "cannot find this rora binary: {e}"))?,
        };
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        Ok(Worker {
            rora,
            cache: abs(cache),
            pipeline: pipeline.map(abs),
            device: device.map(str::to_string),
        })
    }

    pub fn command(&self, job: &JobSpec, forced: bool) -> Vec<String> {
        let mut c = vec![
            self.rora.display().to_string(),
            "--cache-dir".into(),
            self.cache.display().to_string(),
            "job".into(),
        ];
        if let Some(p) = &self.pipeline {
            c.push(p.display().to_string());
        }
        c.push("--key".into());
        c.push(job.key.clone());
        if let Some(d) = &self.device {
            c.push("--device".into());
            c.push(d.clone());
        }
        if forced {
            c.push("--force".into());
        }
        c
    }
}
