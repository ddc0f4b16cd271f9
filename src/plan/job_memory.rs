//! Memory estimates of a plan's jobs, from each kind's [`crate::stages::Stage::memory`] (train
//! jobs: `crate::stages::train::memory`), and the device a plan's model stages ask for.

use super::job::Plan;
pub use super::memory::JobMemory;
use crate::stages::{self, model::ModelParams};

/// Estimates of every train job whose model shape is known.
pub fn plan_memory(plan: &Plan) -> Vec<JobMemory> {
    plan.jobs
        .iter()
        .filter_map(|j| stages::get(j.kind)?.memory(plan, j))
        .collect()
}

/// The device a plan's model stages ask for: `cuda` if any says so, else `auto` if any does,
/// else `cpu` (a plan without model stages: `auto`).
pub fn pipeline_device(plan: &Plan) -> String {
    let devices: Vec<&str> = plan
        .jobs
        .iter()
        .filter_map(|j| j.params.get::<ModelParams>().map(|p| p.device.name()))
        .collect();
    if let Some(c) = devices.iter().find(|d| d.starts_with("cuda")) {
        c.to_string()
    } else if devices.is_empty() || devices.contains(&"auto") {
        "auto".into()
    } else {
        "cpu".into()
    }
}
