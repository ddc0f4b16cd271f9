//! Validation of the job list and a deterministic topological order (Kahn's algorithm, smallest
//! id first among ready jobs), so runs are reproducible and logs comparable.

use std::collections::BTreeSet;

use super::error::ExecError;
use super::job::{JobId, JobSpec};

/// Jobs in an order where every job comes after its dependencies.
pub fn topo_order(jobs: &[JobSpec]) -> Result<Vec<JobId>, ExecError> {
    let n = jobs.len();
    for (pos, job) in jobs.iter().enumerate() {
        if job.id != pos {
            return Err(ExecError::BadId { pos, id: job.id });
        }
        if let Some(&dep) = job.deps.iter().find(|&&d| d >= n) {
            return Err(ExecError::UnknownDep {
                label: job.label.clone(),
                dep,
            });
        }
    }
    let mut indegree: Vec<usize> = jobs.iter().map(|j| j.deps.len()).collect();
    let mut dependents: Vec<Vec<JobId>> = vec![Vec::new(); n];
    for job in jobs {
        for &d in &job.deps {
            dependents[d].push(job.id);
        }
    }
    let mut ready: BTreeSet<JobId> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if order.len() < n {
        return Err(ExecError::Cycle {
            path: cycle_path(jobs, &indegree),
        });
    }
    Ok(order)
}

/// Follow dependencies among the jobs Kahn could not order until one repeats: `a -> b -> a`.
fn cycle_path(jobs: &[JobSpec], indegree: &[usize]) -> String {
    let stuck = |i: &JobId| indegree[*i] > 0;
    let Some(mut cur) = (0..jobs.len()).find(stuck) else {
        return String::new();
    };
    let mut path: Vec<JobId> = Vec::new();
    while !path.contains(&cur) {
        path.push(cur);
        match jobs[cur].deps.iter().copied().find(stuck) {
            Some(next) => cur = next,
            None => break,
        }
    }
    let start = path.iter().position(|&p| p == cur).unwrap_or(0);
    let mut labels: Vec<String> = path[start..]
        .iter()
        .map(|&i| jobs[i].label.clone())
        .collect();
    labels.push(jobs[cur].label.clone());
    labels.join(" -> ")
}
