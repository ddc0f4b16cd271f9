//! Stage runners: thin glue from a planned job's typed params to the libraries that do the work
//! (`model`, `adapter`, `train`, `eval`). `exec` knows jobs, cache and events; this module knows
//! tensors. Every stage reads its inputs from committed entries and writes only into its own
//! staging `out/` dir (see [`artifacts`] for what each kind leaves there).

pub mod adapter;
pub mod artifacts;
pub mod data;
pub mod error;
pub mod eval;
pub mod merge;
pub mod model;
pub mod oom;
pub mod prune;
pub mod report;
pub mod tokens;
pub mod train;

use std::path::Path;

use candle_core::Device;

use crate::cache::{Entry, Probe, Store, layout};
use crate::exec::{JobSpec, Progress, StageError, StageRunner};
use crate::ir::params::StageParams;
use crate::model::ops::LayerPath;
use crate::plan::{Job, JobId, Plan, TOKENS_ROLE};
use crate::schema::Kind;
use crate::train::TrainKnobs;

use error::Result;
pub use error::RunError;

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

/// Runs the jobs of one plan.
pub struct PipelineRunner<'a> {
    pub plan: &'a Plan,
    pub ctx: Ctx<'a>,
}

impl<'a> PipelineRunner<'a> {
    pub fn new(plan: &'a Plan, store: &'a Store, device: Device) -> Self {
        Self {
            plan,
            ctx: Ctx {
                store,
                device,
                knobs: Knobs::default(),
            },
        }
    }

    pub fn with_knobs(mut self, knobs: Knobs) -> Self {
        self.ctx.knobs = knobs;
        self
    }

    /// The committed entry of `job`'s input under `role`.
    fn input<'e>(&self, job: &Job, inputs: &'e [Entry], role: &str) -> Result<&'e Entry> {
        job.deps
            .iter()
            .position(|d| d.role == role)
            .and_then(|i| inputs.get(i))
            .ok_or_else(|| RunError::Plan(format!("job `{}` has no `{role}` input", job.label)))
    }

    /// The job behind `job`'s input `role`.
    fn input_job(&self, job: &Job, role: &str) -> Result<&'a Job> {
        job.deps
            .iter()
            .find(|d| d.role == role)
            .map(|d| self.plan.job(d.job))
            .ok_or_else(|| RunError::Plan(format!("job `{}` has no `{role}` input", job.label)))
    }

    /// The committed entry of a job that ran earlier in this plan (an ancestor).
    fn entry_of(&self, job: &Job) -> Result<Entry> {
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
    fn base_model_job(&self, job: &'a Job) -> Result<&'a Job> {
        let mut j = job;
        loop {
            if matches!(j.kind, Kind::Model | Kind::Prune) {
                return Ok(j);
            }
            let next = ["model", "adapter", "from"]
                .iter()
                .find_map(|r| self.input_job(j, r).ok())
                .ok_or_else(|| RunError::Plan(format!("`{}` reaches no model stage", job.label)))?;
            j = next;
        }
    }

    /// What the report needs about one eval job: the train job behind its model, if any.
    fn run_source(&self, eval_job: &'a Job, eval_entry: &Entry) -> Result<report::RunSource<'a>> {
        let mut train_job = None;
        let mut j = self.input_job(eval_job, "model")?;
        loop {
            match j.kind {
                Kind::Train => {
                    train_job = Some(j);
                    break;
                }
                Kind::Merge => j = self.input_job(j, "from")?,
                _ => break,
            }
        }
        let (train_out, adapter, seed) = match train_job {
            Some(t) => {
                let adapter_job = self.input_job(t, "adapter")?;
                let adapter = match &adapter_job.params {
                    StageParams::Adapter(a) => Some(a),
                    _ => None,
                };
                let seed = match &t.params {
                    StageParams::Train(tp) => Some(tp.seed),
                    _ => None,
                };
                (Some(self.entry_of(t)?.out_dir()), adapter, seed)
            }
            None => (None, None, None),
        };
        Ok(report::RunSource {
            eval_out: eval_entry.out_dir(),
            eval_job,
            train_out,
            adapter,
            train_seed: seed,
        })
    }

    fn dispatch(
        &self,
        job: &'a Job,
        inputs: &[Entry],
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<serde_json::Value> {
        let ctx = &self.ctx;
        match &job.params {
            StageParams::Model(p) => model::run(ctx, p, out, progress),
            StageParams::Data(p) => data::run(p, out, progress),
            StageParams::Adapter(p) => adapter::run(ctx, p, self.input(job, inputs, "model")?, out),
            StageParams::Train(p) => {
                let adapter_job = self.input_job(job, "adapter")?;
                let model = self.entry_of(self.base_model_job(adapter_job)?)?;
                let resume = layout::resume_dir(ctx.store.root(), job.key.hex());
                std::fs::create_dir_all(&resume).map_err(error::io(&resume))?;
                let inputs = train::TrainInputs {
                    model: &model,
                    adapter: self.input(job, inputs, "adapter")?,
                    tokens: self.input(job, inputs, TOKENS_ROLE)?,
                };
                train::run(ctx, p, inputs, &resume, out, progress)
            }
            StageParams::Merge(p) => {
                let trained = self.input(job, inputs, "from")?;
                let model = self.entry_of(self.base_model_job(job)?)?;
                merge::run(ctx, p, &model, trained, out)
            }
            StageParams::Eval(p) => {
                let src_job = self.input_job(job, "model")?;
                let src = self.input(job, inputs, "model")?;
                let base;
                let model = match src_job.kind {
                    Kind::Model | Kind::Merge | Kind::Prune => eval::EvalModel::Dir(src),
                    Kind::Train => {
                        base = self.entry_of(self.base_model_job(src_job)?)?;
                        eval::EvalModel::Adapted {
                            base: &base,
                            trained: src,
                        }
                    }
                    other => {
                        return Err(RunError::Plan(format!(
                            "eval `{}` cannot evaluate a `{}` stage",
                            job.label,
                            other.name()
                        )));
                    }
                };
                eval::run(ctx, p, model, out, progress)
            }
            StageParams::Report(p) => {
                let mut runs = Vec::new();
                for (dep, entry) in job.deps.iter().zip(inputs) {
                    let eval_job = self.plan.job(dep.job);
                    runs.push(self.run_source(eval_job, entry)?);
                }
                report::run(p, &runs, out)
            }
            StageParams::Prune(p) => {
                let calibration = job
                    .deps
                    .iter()
                    .position(|d| d.role == TOKENS_ROLE)
                    .and_then(|i| inputs.get(i));
                let inputs = prune::PruneInputs {
                    model: self.input(job, inputs, "model")?,
                    calibration,
                };
                prune::run(ctx, p, inputs, out, progress)
            }
            StageParams::Tokens => tokens::run(
                self.input(job, inputs, "data")?,
                self.input(job, inputs, "model")?,
                out,
                progress,
            ),
        }
    }
}

impl StageRunner for PipelineRunner<'_> {
    fn run(
        &self,
        job: &JobSpec,
        inputs: &[Entry],
        out_dir: &Path,
        progress: &dyn Progress,
    ) -> std::result::Result<serde_json::Value, StageError> {
        let planned = self.plan.job(JobId(job.id));
        self.dispatch(planned, inputs, out_dir, progress)
            .map_err(|e| oom::explain(self.plan, planned, &self.ctx.device, e).into())
    }
}
