//! Running planned jobs: [`PipelineRunner`] is the executor's [`StageRunner`] for a plan. It hands
//! each job to its kind's [`crate::stages::Stage::run`] with a [`JobCx`] (the job, its committed
//! inputs, the plan), so the runner knows no kind by name. `exec` knows jobs, cache and events;
//! the stage modules know tensors. Every stage reads its inputs from committed entries and writes
//! only into its own staging `out/` dir (see [`artifacts`] for what each kind leaves there).

pub mod artifacts;
pub mod context;
pub mod error;
pub mod oom;

use std::path::Path;

use candle_core::Device;

use crate::cache::{Entry, Store};
use crate::exec::{JobSpec, Progress, StageError, StageRunner};
use crate::plan::{JobId, Plan};

pub use context::{Ctx, JobCx, Knobs};
pub use error::RunError;

/// Runs the jobs of one plan.
pub struct PipelineRunner<'a> {
    pub plan: &'a Plan,
    pub ctx: Ctx<'a>,
    /// Where jobs run, as every manifest records it (queried once).
    device_info: serde_json::Value,
}

impl<'a> PipelineRunner<'a> {
    pub fn new(plan: &'a Plan, store: &'a Store, device: Device) -> Self {
        let info = crate::device::DeviceInfo::query(&device);
        Self {
            plan,
            device_info: serde_json::json!({ "label": info.label, "name": info.name }),
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
        let cx = JobCx {
            ctx: &self.ctx,
            plan: self.plan,
            job: planned,
            inputs,
        };
        let result = match crate::stages::get(planned.kind) {
            Some(stage) => stage.run(&cx, out_dir, progress),
            None => Err(RunError::Plan(format!(
                "no stage module implements kind `{}`",
                planned.kind.name()
            ))),
        };
        let mut meta = result.map_err(|e| oom::explain(self.plan, planned, &self.ctx.device, e))?;
        // Where it ran, beside the outputs in the manifest (not part of the key: devices differ
        // only by rounding).
        if let serde_json::Value::Object(m) = &mut meta {
            m.insert("device".into(), self.device_info.clone());
        }
        Ok(meta)
    }
}
