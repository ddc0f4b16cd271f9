//! What a stage's runner gets: the store, the device and the A/B switches of the run ([`Ctx`]),
//! and the job with its committed inputs and the plan around it ([`JobCx`]).

use std::path::PathBuf;

use candle_core::Device;

use super::error::{Result, RunError, io};
use crate::cache::{Entry, Probe, Store, layout};
use crate::model::ops::LayerPath;
use crate::plan::job::{Job, Plan, base_model};
use crate::train::TrainKnobs;

/// What every runner may use.
pub struct Ctx<'a> {
    pub store: &'a Store,
    pub device: Device,
    pub knobs: Knobs,
}

/// A/B switches of a run (`rora run --layer-path`, `--whole-batches`, ...). Each changes results
/// only by floating-point rounding, so, like the device, none is part of a key; a train job
/// records the layer path it took and any switch that is not default in its manifest.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    pub layer_path: LayerPath,
    pub train: TrainKnobs,
}

/// One job being run: its params, its committed inputs by role, and the plan it belongs to.
pub struct JobCx<'a> {
    pub ctx: &'a Ctx<'a>,
    pub plan: &'a Plan,
    pub job: &'a Job,
    /// The committed entries of `job.deps`, in the same order.
    pub inputs: &'a [Entry],
}

impl<'a> JobCx<'a> {
    /// The job's params as its kind's type.
    pub fn params<T: 'static>(&self) -> Result<&'a T> {
        self.job.params.get::<T>().ok_or_else(|| {
            RunError::Plan(format!(
                "job `{}` does not carry `{}` params",
                self.job.label,
                self.job.kind.name()
            ))
        })
    }

    /// The committed entry of the job's input under `role`.
    pub fn input(&self, role: &str) -> Result<&'a Entry> {
        self.input_opt(role).ok_or_else(|| {
            RunError::Plan(format!("job `{}` has no `{role}` input", self.job.label))
        })
    }

    /// The committed entry under `role`, when the job has that input.
    pub fn input_opt(&self, role: &str) -> Option<&'a Entry> {
        self.job
            .deps
            .iter()
            .position(|d| d.role == role)
            .and_then(|i| self.inputs.get(i))
    }

    /// The job behind `job`'s input `role`.
    pub fn input_job(&self, job: &Job, role: &str) -> Result<&'a Job> {
        job.deps
            .iter()
            .find(|d| d.role == role)
            .map(|d| self.plan.job(d.job))
            .ok_or_else(|| RunError::Plan(format!("job `{}` has no `{role}` input", job.label)))
    }

    /// The committed entry of a job that ran earlier in this plan (an ancestor).
    pub fn entry_of(&self, job: &Job) -> Result<Entry> {
        match self.ctx.store.probe(job.key.hex())? {
            Probe::Valid(e) => Ok(e),
            _ => Err(RunError::Plan(format!(
                "the output of `{}` is not in the cache (key {})",
                job.label,
                job.key.short()
            ))),
        }
    }

    /// The `model` (or `prune`) stage job a job's base weights come from, walking
    /// `model=`/`from=`/`adapter=` refs.
    pub fn base_model_job(&self, job: &'a Job) -> Result<&'a Job> {
        base_model(&self.plan.jobs, job.id)
            .map(|id| self.plan.job(id))
            .ok_or_else(|| RunError::Plan(format!("`{}` reaches no model stage", job.label)))
    }

    /// The job's resume directory in the store (created): checkpoints of an interrupted run.
    pub fn resume_dir(&self) -> Result<PathBuf> {
        let resume = layout::resume_dir(self.ctx.store.root(), self.job.key.hex());
        std::fs::create_dir_all(&resume).map_err(io(&resume))?;
        Ok(resume)
    }
}
