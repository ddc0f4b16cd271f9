//! `rora plan`: a checked [`Pipeline`] -> [`Plan`], the job DAG after sweep expansion.
//!
//! Guarantees: jobs are in dependency order (every dependency has a smaller id); a stage has one job
//! per point of the sweep axes it uses directly or through its inputs (a report stage instead collects
//! every job of its `from` stage), so a stage that does not depend on a swept axis is one job shared
//! by all points; every job carries its typed params, resolved absolute paths (inside the params),
//! dependency jobs by role, its [`StageKey`] and the [`Fingerprint`] the key was derived from.

pub mod digest;
pub mod job;
pub mod job_memory;
pub mod key;
pub mod memory;
pub mod resolve;
pub mod shapes;

use std::collections::{BTreeMap, BTreeSet};

pub use digest::{DigestError, DigestMemo};
pub use job::{Dep, Job, JobId, Plan, TOKENS_ROLE};
pub use key::{Fingerprint, KEY_FORMAT_VERSION, StageKey};
pub use resolve::{HubResolver, Unresolved};

use crate::ir::bind::{BindError, bind};
use crate::ir::points::{label, points};
use crate::ir::{Pipeline, VarKind};
use crate::schema::Kind;
use crate::stages::{self, ParamError, StageParams};

/// Most jobs a plan may have.
pub const MAX_JOBS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("stage `{stage}` expands to more than {MAX_JOBS} jobs")]
    TooManyJobs { stage: String },
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error("stage `{stage}` is of kind `{kind}`, which no stage module implements")]
    UnknownKind { stage: String, kind: &'static str },
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("stage `{stage}`: cannot resolve its hub revision to a commit: {source}")]
    Hub {
        stage: String,
        #[source]
        source: Box<crate::hub::HubError>,
    },
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
        let kind = stages::get(s.kind).ok_or_else(|| PlanError::UnknownKind {
            stage: s.name.clone(),
            kind: s.kind.name(),
        })?;
        let mut axes: BTreeSet<String> = s
            .vars()
            .filter(|v| v.0 == VarKind::Sweep)
            .map(|v| v.1.to_string())
            .collect();
        if !kind.collects() {
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
            let b = bind(s, kind.spec(), &pt, &p.params)?;
            let params = kind.params(&b, &p.file)?;
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
            if let Some(pair) = tokenize_pair(kind, &deps, &jobs) {
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
                kind_version: kind.spec().version,
                params: key::key_params(kind.spec(), &b),
                upstream,
                inputs: kind.key_inputs(&b, &params, memo)?,
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
                resources: job::StageResources::of(&b),
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

/// The (data job, base model job) a job of `kind` with `deps` tokenizes, if it tokenizes
/// ([`crate::stages::Stage::tokenizes`]): its data input, and the model job reached from its
/// other named input by `model=` / `adapter=` / `from=` refs (a train job: the model its adapter
/// was made for; a prune job: the model it prunes).
fn tokenize_pair(kind: &dyn stages::Stage, deps: &[Dep], jobs: &[Job]) -> Option<(JobId, JobId)> {
    let (data_role, via) = kind.tokenizes()?;
    let dep = |role: &str| deps.iter().find(|d| d.role == role).map(|d| d.job);
    Some((dep(data_role)?, job::base_model(jobs, dep(via)?)?))
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
        kind_version: stages::spec(Kind::Tokens).version,
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
        params: StageParams::new(Kind::Tokens, stages::tokens::TokensParams),
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
        resources: None,
    }
}
