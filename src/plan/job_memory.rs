//! The memory estimate of each `train` job of a plan, from the params of the jobs it depends on:
//! the model shape (a random preset, a local HF dir or GGUF file, or a known hub id), the adapter's
//! targets and rank, the training micro-batch and the data's `max-len`.
//!
//! The compute dtype is the one the train runner loads the base in: f32 (`src/run/train.rs` loads
//! every base in f32 today, whatever the model stage's `dtype`), so the estimate follows it.

use serde::Serialize;

use super::memory::{MemoryEstimate, MemoryInput, estimate, select_projections};
use super::{Job, Plan, shapes};
use crate::check::modelinfo::model_config;
use crate::ir::params::{AdapterMethod, ModelSource, StageParams, Targets};
use crate::model::config::LlamaConfig;
use crate::schema::Kind;

/// Bytes per element of the base weights the train runner computes with.
pub const TRAIN_DTYPE_BYTES: u64 = 4;

#[derive(Debug, Clone, Serialize)]
pub struct JobMemory {
    pub job: usize,
    pub label: String,
    pub estimate: MemoryEstimate,
    pub total: u64,
}

fn dep<'a>(plan: &'a Plan, job: &Job, role: &str) -> Option<&'a Job> {
    job.deps
        .iter()
        .find(|d| d.role == role)
        .map(|d| plan.job(d.job))
}

/// The model config behind a job, walking `model` / `from` / `adapter` inputs to a model stage.
fn model_shape(plan: &Plan, job: &Job) -> Option<LlamaConfig> {
    let mut j = job;
    for _ in 0..plan.jobs.len() {
        if j.kind == Kind::Model {
            let StageParams::Model(p) = &j.params else {
                return None;
            };
            return match &p.source {
                Some(ModelSource::Hub { id, .. }) => shapes::by_hub_id(id),
                _ => model_config(p).ok().flatten(),
            };
        }
        j = ["model", "from", "adapter"]
            .iter()
            .find_map(|r| dep(plan, j, r))?;
    }
    None
}

/// The estimate of one train job, or `None` when the model's shape is not known offline.
pub fn train_job_memory(plan: &Plan, job: &Job) -> Option<JobMemory> {
    let StageParams::Train(t) = &job.params else {
        return None;
    };
    let adapter_job = dep(plan, job, "adapter")?;
    let StageParams::Adapter(a) = &adapter_job.params else {
        return None;
    };
    let seq = match dep(plan, job, "data").map(|d| &d.params) {
        Some(StageParams::Data(d)) => d.max_len,
        _ => return None,
    };
    let config = model_shape(plan, adapter_job)?;
    let (names, regex) = match &a.targets {
        Targets::Names(n) => (Some(n.as_slice()), None),
        Targets::AllLinear => (None, None),
        Targets::Regex(r) => (None, Some(regex::Regex::new(r).ok()?)),
    };
    let adapted = select_projections(&config, a.rank, names, regex.as_ref(), a.layers.as_deref());
    let e = estimate(&MemoryInput {
        config: &config,
        dtype_bytes: TRAIN_DTYPE_BYTES,
        adapted,
        dora: a.method == AdapterMethod::Dora,
        micro_batch: t.micro_batch.max(1),
        seq,
    });
    Some(JobMemory {
        job: job.id.0,
        label: job.label.clone(),
        estimate: e,
        total: e.total(),
    })
}

/// Estimates of every train job whose model shape is known.
pub fn plan_memory(plan: &Plan) -> Vec<JobMemory> {
    plan.jobs
        .iter()
        .filter(|j| j.kind == Kind::Train)
        .filter_map(|j| train_job_memory(plan, j))
        .collect()
}

/// The device a plan's model stages ask for: `cuda` if any says so, else `auto` if any does,
/// else `cpu` (a plan without model stages: `auto`).
pub fn pipeline_device(plan: &Plan) -> String {
    let devices: Vec<&str> = plan
        .jobs
        .iter()
        .filter_map(|j| match &j.params {
            StageParams::Model(p) => Some(p.device.as_str()),
            _ => None,
        })
        .collect();
    if let Some(c) = devices.iter().find(|d| d.starts_with("cuda")) {
        c.to_string()
    } else if devices.is_empty() || devices.contains(&"auto") {
        "auto".into()
    } else {
        "cpu".into()
    }
}
