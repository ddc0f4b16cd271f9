//! What a plan is: jobs in dependency order, each with its typed params, its inputs by role, its
//! key and the fingerprint the key was derived from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::key::{Fingerprint, StageKey};
use crate::ir::bind::Point;
use crate::schema::{Kind, MODEL_LIKE};
use crate::stages::params::StageParams;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct JobId(pub usize);

/// The dependency role under which train and prune jobs read their tokenized data.
pub const TOKENS_ROLE: &str = "tokens";

/// The job whose model directory `from`'s weights come from: the first `MODEL_LIKE` job (a model
/// or prune stage) reached by following `model=` / `adapter=` / `from=` inputs.
pub fn base_model(jobs: &[Job], from: JobId) -> Option<JobId> {
    let mut j = jobs.get(from.0)?;
    while !MODEL_LIKE.contains(&j.kind) {
        let next = ["model", "adapter", "from"]
            .iter()
            .find_map(|r| j.deps.iter().find(|d| d.role == *r))?;
        j = jobs.get(next.job.0)?;
    }
    Some(j.id)
}

/// An input of a job: the job that produces it, under a role (`model`, `data`, `from`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dep {
    pub role: String,
    pub job: JobId,
}

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: JobId,
    pub stage: String,
    pub kind: Kind,
    /// The sweep values this job depends on (empty for a shared job).
    pub point: Point,
    /// `stage` or `stage@rank=8,method=lora`.
    pub label: String,
    pub params: StageParams,
    pub deps: Vec<Dep>,
    pub key: StageKey,
    pub fingerprint: Fingerprint,
    /// The stage's `resources` as written (cluster executors; part of no key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<StageResources>,
}

/// A stage's `resources` option, as written: what its jobs ask a cluster for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StageResources {
    pub cpus: Option<u32>,
    pub gpus: Option<u32>,
    pub mem: Option<String>,
    pub time: Option<String>,
}

impl StageResources {
    /// From a bound stage; `None` when it has no `resources`.
    pub fn of(b: &crate::ir::bound::BoundStage) -> Option<StageResources> {
        b.first("resources")?;
        let int = |p: &str| {
            b.prop("resources", p)
                .and_then(|v| v.as_i64())
                .map(|n| n as u32)
        };
        let text = |p: &str| {
            b.prop("resources", p)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        Some(StageResources {
            cpus: int("cpus"),
            gpus: int("gpus"),
            mem: text("mem"),
            time: text("time"),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub pipeline: PathBuf,
    pub jobs: Vec<Job>,
}

impl Plan {
    pub fn job(&self, id: JobId) -> &Job {
        &self.jobs[id.0]
    }

    /// Jobs of a stage.
    pub fn stage_jobs<'a>(&'a self, stage: &'a str) -> impl Iterator<Item = &'a Job> + 'a {
        self.jobs.iter().filter(move |j| j.stage == stage)
    }

    /// Find a job by `stage` or `stage@k=v,k2=v2` (the order of the pairs does not matter).
    pub fn find(&self, spec: &str) -> Option<&Job> {
        let (stage, point) = spec.split_once('@').unwrap_or((spec, ""));
        let want: BTreeMap<&str, &str> = point
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|kv| kv.split_once('='))
            .collect();
        self.jobs.iter().find(|j| {
            j.stage == stage
                && j.point.len() == want.len()
                && j.point
                    .iter()
                    .all(|(k, v)| want.get(k.as_str()) == Some(&v.to_string().as_str()))
        })
    }
}
