//! `rora plan`: a checked [`Pipeline`] -> [`Plan`], the job DAG after sweep expansion.
//!
//! Guarantees: jobs are in dependency order (every dependency has a smaller id); a stage has one job
//! per point of the sweep axes it uses directly or through its inputs (a report stage instead collects
//! every job of its `from` stage), so a stage that does not depend on a swept axis is one job shared
//! by all points; every job carries its typed params, resolved absolute paths (inside the params),
//! dependency jobs by role, its [`StageKey`] and the [`Fingerprint`] the key was derived from.

pub mod digest;
pub mod job_memory;
pub mod key;
pub mod memory;
pub mod resolve;
pub mod shapes;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

pub use digest::{DigestError, DigestMemo};
pub use key::{Fingerprint, KEY_FORMAT_VERSION, StageKey};
pub use resolve::{HubResolver, Unresolved};

use crate::ir::bind::{BindError, BoundStage, Point, bind};
use crate::ir::params::{ModelSource, StageParams, shipped_eval_dir};
use crate::ir::points::{label, points};
use crate::ir::{Pipeline, VarKind};
use crate::schema::{self, Kind};

/// Most jobs a plan may have.
pub const MAX_JOBS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct JobId(pub usize);

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
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub pipeline: PathBuf,
    pub jobs: Vec<Job>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("stage `{stage}` expands to more than {MAX_JOBS} jobs")]
    TooManyJobs { stage: String },
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("stage `{stage}`: cannot resolve its hub revision to a commit: {source}")]
    Hub {
        stage: String,
        #[source]
        source: Box<crate::hub::HubError>,
    },
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

/// Build the plan. `memo` memoizes input file digests. Hub sources are keyed by their revision as
/// written (no network); see [`plan_with`].
pub fn plan(p: &Pipeline, memo: &mut DigestMemo) -> Result<Plan, PlanError> {
    plan_with(p, memo, &mut Unresolved)
}

/// Build the plan, keying every hub source by the commit `hub` resolves its revision to
/// (see [`resolve`]).
pub fn plan_with(
    p: &Pipeline,
    memo: &mut DigestMemo,
    hub: &mut dyn HubResolver,
) -> Result<Plan, PlanError> {
    let mut pins = resolve::Pins::new(hub);
    let mut jobs: Vec<Job> = vec![];
    // (data job, base model job) -> the `tokens` job that tokenizes one with the other's tokenizer
    let mut tokens_jobs: BTreeMap<(JobId, JobId), JobId> = BTreeMap::new();
    let mut stage_axes: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut stage_jobs: BTreeMap<&str, Vec<JobId>> = BTreeMap::new();
    for s in &p.stages {
        let mut axes: BTreeSet<String> = s
            .vars()
            .filter(|v| v.0 == VarKind::Sweep)
            .map(|v| v.1.to_string())
            .collect();
        if s.kind != Kind::Report {
            for r in s.refs.values() {
                axes.extend(stage_axes.get(r.name.as_str()).cloned().unwrap_or_default());
            }
        }
        let pts = points(&p.axes, &axes, MAX_JOBS).ok_or_else(|| PlanError::TooManyJobs {
            stage: s.name.clone(),
        })?;
        if jobs.len() + pts.len() > MAX_JOBS {
            return Err(PlanError::TooManyJobs {
                stage: s.name.clone(),
            });
        }
        let mut ids = vec![];
        for pt in pts {
            let b = bind(s, &pt, &p.params)?;
            let params = StageParams::from_bound(&b, &p.file);
            let mut deps = vec![];
            let mut upstream: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (role, r) in &s.refs {
                for id in stage_jobs
                    .get(r.name.as_str())
                    .map_or(&[][..], |v| v.as_slice())
                {
                    let dj = &jobs[id.0];
                    if dj
                        .point
                        .iter()
                        .all(|(k, v)| pt.get(k).is_none_or(|x| x == v))
                    {
                        deps.push(Dep {
                            role: role.clone(),
                            job: *id,
                        });
                        upstream
                            .entry(role.clone())
                            .or_default()
                            .push(dj.key.0.clone());
                    }
                }
            }
            if let Some(pair) = tokenize_pair(s.kind, &deps, &jobs) {
                let tokens = match tokens_jobs.get(&pair) {
                    Some(id) => *id,
                    None => {
                        let id = JobId(jobs.len());
                        jobs.push(tokens_job(id, pair, &jobs));
                        tokens_jobs.insert(pair, id);
                        id
                    }
                };
                deps.push(Dep {
                    role: TOKENS_ROLE.into(),
                    job: tokens,
                });
                upstream.insert(TOKENS_ROLE.into(), vec![jobs[tokens.0].key.0.clone()]);
            }
            let mut params = params;
            let mut fingerprint = Fingerprint {
                key_format_version: KEY_FORMAT_VERSION,
                kind: s.kind.name().to_string(),
                kind_version: schema::spec(s.kind).version,
                params: key::key_params(&b),
                upstream,
                inputs: inputs(&b, &params, memo)?,
                seed: b.int("seed"),
            };
            let id = JobId(jobs.len());
            let lbl = if pt.is_empty() {
                s.name.clone()
            } else {
                format!("{}@{}", s.name, label(&pt))
            };
            pins.pin(&lbl, &mut params, &mut fingerprint)?;
            jobs.push(Job {
                id,
                stage: s.name.clone(),
                kind: s.kind,
                point: pt,
                label: lbl,
                params,
                deps,
                key: fingerprint.key(),
                fingerprint,
            });
            ids.push(id);
        }
        stage_axes.insert(&s.name, axes);
        stage_jobs.insert(&s.name, ids);
    }
    Ok(Plan {
        pipeline: p.file.path.clone(),
        jobs,
    })
}

/// The dependency role under which train and prune jobs read their tokenized data.
pub const TOKENS_ROLE: &str = "tokens";

/// The (data job, base model job) a job of `kind` with `deps` tokenizes, if it tokenizes: a train
/// job its `data` with the model its adapter was made for; a prune job its `calibration.data` with
/// the model it prunes.
fn tokenize_pair(kind: Kind, deps: &[Dep], jobs: &[Job]) -> Option<(JobId, JobId)> {
    let dep = |deps: &[Dep], role: &str| deps.iter().find(|d| d.role == role).map(|d| d.job);
    match kind {
        Kind::Train => {
            let data = dep(deps, "data")?;
            let mut j = &jobs[dep(deps, "adapter")?.0];
            while !matches!(j.kind, Kind::Model | Kind::Prune) {
                let next = ["model", "adapter", "from"]
                    .iter()
                    .find_map(|r| dep(&j.deps, r))?;
                j = &jobs[next.0];
            }
            Some((data, j.id))
        }
        Kind::Prune => Some((dep(deps, "calibration.data")?, dep(deps, "model")?)),
        _ => None,
    }
}

/// The `tokens` job of `(data, model)`: labelled `<data>.tokens.<model>` (with the sweep values of
/// either), keyed by the two upstream keys alone.
fn tokens_job(id: JobId, (data, model): (JobId, JobId), jobs: &[Job]) -> Job {
    let (d, m) = (&jobs[data.0], &jobs[model.0]);
    let stage = format!("{}.tokens.{}", d.stage, m.stage);
    let mut point = d.point.clone();
    point.extend(m.point.clone());
    let label = if point.is_empty() {
        stage.clone()
    } else {
        format!("{stage}@{}", label(&point))
    };
    let fingerprint = Fingerprint {
        key_format_version: KEY_FORMAT_VERSION,
        kind: Kind::Tokens.name().to_string(),
        kind_version: schema::spec(Kind::Tokens).version,
        params: BTreeMap::new(),
        upstream: [
            ("data".to_string(), vec![d.key.0.clone()]),
            ("model".to_string(), vec![m.key.0.clone()]),
        ]
        .into(),
        inputs: BTreeMap::new(),
        seed: None,
    };
    Job {
        id,
        stage,
        kind: Kind::Tokens,
        point,
        label,
        params: StageParams::Tokens,
        deps: vec![
            Dep {
                role: "data".into(),
                job: data,
            },
            Dep {
                role: "model".into(),
                job: model,
            },
        ],
        key: fingerprint.key(),
        fingerprint,
    }
}

/// Content digests of a job's local inputs.
fn inputs(
    b: &BoundStage,
    params: &StageParams,
    memo: &mut DigestMemo,
) -> Result<BTreeMap<String, String>, DigestError> {
    let mut out = BTreeMap::new();
    match params {
        StageParams::Model(m) => match &m.source {
            Some(ModelSource::Path(dir)) => {
                let keep = |n: &str| {
                    n.ends_with(".json")
                        || n.ends_with(".safetensors")
                        || n.ends_with(".model")
                        || n.ends_with(".txt")
                };
                out.insert("path".into(), memo.dir(dir, keep)?);
            }
            Some(ModelSource::Gguf(f)) => {
                out.insert("gguf".into(), memo.file(f)?);
            }
            _ => {}
        },
        StageParams::Data(d) => {
            if let Some(crate::ir::params::DataSource::Files(pats)) = &d.source {
                let digests = pats
                    .iter()
                    .map(|p| memo.glob(p))
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert(
                    "files".into(),
                    blake3::hash(digests.join(",").as_bytes())
                        .to_hex()
                        .to_string(),
                );
            }
        }
        StageParams::Eval(e) => {
            let wanted: Vec<String> = e
                .tasks
                .iter()
                .flat_map(|t| {
                    [
                        format!("{t}.{}.jsonl", e.split),
                        format!("{t}.{}.jsonl.gz", e.split),
                    ]
                })
                .collect();
            let d = if e.dir.is_dir() {
                memo.dir(&e.dir, |n| wanted.iter().any(|w| w == n))?
            } else if b.has("dir") || e.dir != shipped_eval_dir() {
                return Err(DigestError::Io {
                    path: e.dir.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            } else {
                "absent".to_string()
            };
            out.insert("dir".into(), d);
        }
        _ => {}
    }
    Ok(out)
}
