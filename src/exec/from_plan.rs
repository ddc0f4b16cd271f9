//! The planner's [`Plan`] as the executor's job list: same ids, labels, keys and dependency order
//! (so `inputs[i]` of a runner is the entry of `plan.job(id).deps[i]`, whose role is there).

use crate::plan::Plan;

use super::job::JobSpec;

/// One [`JobSpec`] per plan job, indexed like `plan.jobs`.
pub fn jobs_from_plan(plan: &Plan) -> Vec<JobSpec> {
    let pipeline = plan.pipeline.display().to_string();
    plan.jobs
        .iter()
        .map(|j| JobSpec {
            id: j.id.0,
            stage: j.stage.clone(),
            label: j.label.clone(),
            point: j
                .point
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            kind: j.kind.name().to_string(),
            key: j.key.hex().to_string(),
            deps: j.deps.iter().map(|d| d.job.0).collect(),
            pipeline: Some(pipeline.clone()),
            // A fingerprint holds only strings, integers, booleans, lists and maps: it always
            // converts; `Null` would only make `explain` less informative.
            fingerprint: serde_json::to_value(&j.fingerprint).unwrap_or(serde_json::Value::Null),
        })
        .collect()
}

#[cfg(test)]
mod tests;
