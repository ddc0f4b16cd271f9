//! Which jobs a run touches: `--only` (just these; their inputs must be cached), `--until` (these
//! and everything they need, nothing after), `--force` (recompute these even if cached).

use super::error::ExecError;
use super::job::{JobSpec, Selector};

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Report what would run; compute nothing, lock nothing.
    pub dry_run: bool,
    pub only: Vec<Selector>,
    pub until: Vec<Selector>,
    pub force: Vec<Selector>,
    /// After a failure, go on with the jobs that do not depend on it.
    pub keep_going: bool,
}

impl ExecOptions {
    /// Whether `outcome` ends the run: a failure or a blocked job without `keep_going`.
    pub fn stops(&self, outcome: &super::summary::Outcome) -> bool {
        use super::summary::Outcome;
        matches!(outcome, Outcome::Failed { .. } | Outcome::Blocked { .. }) && !self.keep_going
    }
}

/// Per job id: whether it runs in this invocation, and whether its cache entry is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub selected: Vec<bool>,
    pub forced: Vec<bool>,
}

pub fn select(jobs: &[JobSpec], opts: &ExecOptions) -> Result<Selection, ExecError> {
    let n = jobs.len();
    let mut selected = vec![true; n];
    if !opts.only.is_empty() {
        selected = matching(jobs, &opts.only, "only")?;
    }
    if !opts.until.is_empty() {
        let targets = matching(jobs, &opts.until, "until")?;
        let closure = ancestors_and_self(jobs, &targets);
        for (s, c) in selected.iter_mut().zip(closure) {
            *s &= c;
        }
    }
    let forced = if opts.force.is_empty() {
        vec![false; n]
    } else {
        matching(jobs, &opts.force, "force")?
    };
    Ok(Selection { selected, forced })
}

fn matching(
    jobs: &[JobSpec],
    selectors: &[Selector],
    flag: &'static str,
) -> Result<Vec<bool>, ExecError> {
    let mut hit = vec![false; jobs.len()];
    for sel in selectors {
        let mut any = false;
        for job in jobs.iter().filter(|j| sel.matches(j)) {
            hit[job.id] = true;
            any = true;
        }
        if !any {
            return Err(ExecError::NoMatch {
                flag,
                selector: sel.to_string(),
                hint: hint(jobs, sel),
            });
        }
    }
    Ok(hit)
}

/// `; did you mean `ft`?` for a near stage name, else the list of points of the stage.
fn hint(jobs: &[JobSpec], sel: &Selector) -> String {
    let mut stages: Vec<&str> = jobs.iter().map(|j| j.stage.as_str()).collect();
    stages.dedup();
    if stages.contains(&sel.stage.as_str()) {
        let labels: Vec<&str> = jobs
            .iter()
            .filter(|j| j.stage == sel.stage)
            .map(JobSpec::label)
            .collect();
        return format!("; the jobs of `{}` are: {}", sel.stage, labels.join(" "));
    }
    stages
        .iter()
        .map(|s| (strsim::levenshtein(s, &sel.stage), *s))
        .filter(|(d, _)| *d < 3)
        .min()
        .map(|(_, s)| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

fn ancestors_and_self(jobs: &[JobSpec], targets: &[bool]) -> Vec<bool> {
    let mut mark = targets.to_vec();
    let mut stack: Vec<usize> = (0..jobs.len()).filter(|&i| targets[i]).collect();
    while let Some(i) = stack.pop() {
        for &d in &jobs[i].deps {
            if d < jobs.len() && !mark[d] {
                mark[d] = true;
                stack.push(d);
            }
        }
    }
    mark
}
