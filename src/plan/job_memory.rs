//! The memory estimate of each `train` job of a plan, from the params of the jobs it depends on:
//! the model shape (a random preset, a local HF dir or GGUF file, or a known hub id), the adapter's
//! targets and rank, the training micro-batch and the data's `max-len`.
//!
//! The compute dtype is the one the train runner loads the base in: the dtype the base's entry was
//! saved in (`src/run/train.rs`): the `model` stage's `dtype`; a `prune` stage saves f32.

use serde::Serialize;

use super::memory::{MemoryEstimate, MemoryInput, estimate, select_projections};
use super::{Job, Plan, shapes};
use crate::check::modelinfo::model_config;
use crate::ir::params::{AdapterMethod, ModelSource, StageParams, Targets};
use crate::model::config::LlamaConfig;
use crate::schema::Kind;

/// Bytes per element of a base saved as `dtype` (`f32`: 4).
fn dtype_bytes(dtype: &str) -> u64 {
    match dtype {
        "bf16" | "f16" => 2,
        _ => 4,
    }
}

/// Bytes per element of the base the adapter job's `model` input holds.
fn base_dtype_bytes(plan: &Plan, adapter_job: &Job) -> u64 {
    match dep(plan, adapter_job, "model").map(|j| &j.params) {
        Some(StageParams::Model(m)) => dtype_bytes(&m.dtype),
        _ => 4,
    }
}

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
        dtype_bytes: base_dtype_bytes(plan, adapter_job),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check_bytes;
    use crate::plan::{DigestMemo, plan};

    /// The weights' share of the estimate of a train job on a model saved as `model_dtype`,
    /// directly or through an unstructured prune.
    fn weights(model_dtype: &str, pruned: bool) -> u64 {
        let input = if pruned { "p" } else { "m" };
        let src = format!(
            r#"
model "m" {{
    random layers=2 hidden=64 heads=4 kv-heads=2 ffn=128
    dtype "{model_dtype}"
}}
data "d" {{
    hub "org/commonsense"
    max-len 128
}}
prune "p" model="m" {{
    method "magnitude"
    sparsity 0.5
}}
adapter "a" model="{input}" {{
    rank 8
    alpha 16
    targets "q_proj" "v_proj"
}}
train "t" adapter="a" data="d" {{
    steps 10
}}
"#
        );
        let r = check_bytes("p.kdl", src.as_bytes());
        assert!(!r.has_errors(), "{:?}", r.diagnostics);
        let p = plan(&r.pipeline.expect("checked"), &mut DigestMemo::new()).expect("plan");
        let train = p.stage_jobs("t").next().expect("train job");
        train_job_memory(&p, train)
            .expect("estimate")
            .estimate
            .weights
    }

    #[test]
    fn the_estimate_follows_the_dtype_the_base_is_saved_in() {
        let f32 = weights("f32", false);
        assert!(f32 > 0);
        assert_eq!(weights("bf16", false) * 2, f32);
        assert_eq!(weights("f16", false) * 2, f32);
        // a prune stage saves f32, whatever the model's dtype
        assert_eq!(weights("bf16", true), f32);
    }
}
