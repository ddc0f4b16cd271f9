//! What the executor needs to know about a job, independent of the planner's types: an id, the
//! stage name and sweep point, the kind, the cache key, and the jobs it depends on. The planner's
//! `Plan` converts into a list of these.

use std::fmt;

use serde::Serialize;

/// Index of a job in the job list given to the executor.
pub type JobId = usize;

#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub id: JobId,
    /// The stage's name in the pipeline, e.g. `ft`.
    pub stage: String,
    /// `stage` or `stage@k=v,...`, as the planner prints it.
    pub label: String,
    /// The sweep point, in the planner's order, e.g. `[("rank", "8"), ("method", "rora")]`.
    pub point: Vec<(String, String)>,
    /// Stage kind, e.g. `train`.
    pub kind: String,
    /// blake3 hex of the job's fingerprint.
    pub key: String,
    /// Jobs whose outputs this one reads, in the order the runner receives them.
    pub deps: Vec<JobId>,
    /// The pipeline file, recorded in the manifest.
    pub pipeline: Option<String>,
    /// The key components, recorded in the manifest (what `explain` compares).
    pub fingerprint: serde_json::Value,
}

impl JobSpec {
    /// How the job is named to users: the planner's label, e.g. `ft@rank=8,method=rora`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `stage` or `stage@k=v,k=v` in the point's order (for job lists not made by the planner).
    pub fn default_label(stage: &str, point: &[(String, String)]) -> String {
        if point.is_empty() {
            return stage.to_string();
        }
        let point: Vec<String> = point.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{stage}@{}", point.join(","))
    }

    /// A short reference for events and logs.
    pub fn as_ref(&self) -> JobRef {
        JobRef {
            id: self.id,
            label: self.label.clone(),
            kind: self.kind.clone(),
            key: self.key.clone(),
        }
    }
}

/// A job as events name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRef {
    pub id: JobId,
    pub label: String,
    pub kind: String,
    pub key: String,
}

/// `stage` or `stage@k=v,k=v`, as given to `--only`, `--until`, `--force`. A job matches when its
/// stage is `stage` and its point contains every `k=v` given (so `ft@rank=8` matches both methods).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub stage: String,
    pub point: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid job selector {text:?}: {why} (expected `stage` or `stage@key=value,key=value`)")]
pub struct SelectorError {
    pub text: String,
    pub why: &'static str,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let err = |why| SelectorError {
            text: text.to_string(),
            why,
        };
        let (stage, point) = match text.split_once('@') {
            Some((s, p)) => (s, Some(p)),
            None => (text, None),
        };
        if stage.is_empty() {
            return Err(err("empty stage name"));
        }
        let mut items = Vec::new();
        for item in point.into_iter().flat_map(|p| p.split(',')) {
            let Some((k, v)) = item.split_once('=') else {
                return Err(err("point item without `=`"));
            };
            if k.is_empty() || v.is_empty() {
                return Err(err("empty key or value in point"));
            }
            items.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(Selector {
            stage: stage.to_string(),
            point: items,
        })
    }

    pub fn matches(&self, job: &JobSpec) -> bool {
        job.stage == self.stage && self.point.iter().all(|item| job.point.contains(item))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stage)?;
        for (i, (k, v)) in self.point.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { "@" } else { "," })?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}
