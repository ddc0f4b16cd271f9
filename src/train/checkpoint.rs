//! Checkpoints: `<out>/checkpoints/step-NNNNNNNN/` holding
//! - `adapter.safetensors`: every trainable variable by its PEFT name (f32),
//! - `optimizer.safetensors`: AdamW moments `{name}.exp_avg` / `{name}.exp_avg_sq`,
//! - `state.json`: step, data cursor, dropout RNG state, counters, the config it was made with,
//! - `metrics.jsonl`: the metrics file as it was at that step.
//!
//! A checkpoint is staged in a hidden sibling directory and renamed into place only when complete,
//! so a directory named `step-*` is always whole; [`latest`] ignores anything else. Older
//! checkpoints beyond `keep` are removed after a new one lands.

use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

use super::adamw::AdamWState;
use super::atomic::{sync_dir, write_new};
use super::config::TrainConfig;
use super::error::{Result, TrainError};
use super::rng::RngState;
use super::tensors_io::{self, HostTensor};

pub const ADAPTER_FILE: &str = "adapter.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";
const METRICS_FILE: &str = "metrics.jsonl";

/// Everything but tensors that a resumed run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Optimizer steps completed.
    pub step: usize,
    /// Data cursor: the next micro-batch is `index` of `epoch`.
    pub epoch: usize,
    pub index: usize,
    pub rng: RngState,
    /// Real (unpadded) tokens processed so far.
    pub tokens_seen: u64,
    /// Wall seconds spent training so far (over all attempts).
    pub elapsed_s: f64,
    pub last_loss: Option<f64>,
    pub last_val_loss: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format: u32,
    state: LoopState,
    adam_step: u64,
    vars: Vec<(String, Vec<usize>)>,
    config: TrainConfig,
}

/// The variables' names, shapes and values (host copies), in trainable-variable order.
pub struct Params<'a> {
    pub names: &'a [(String, Vec<usize>)],
    pub values: &'a [Vec<f32>],
}

pub struct Loaded {
    pub state: LoopState,
    pub values: Vec<Vec<f32>>,
    pub adam: AdamWState,
    pub metrics: String,
}

pub fn dir_for(root: &Path, step: usize) -> PathBuf {
    root.join(format!("step-{step:08}"))
}

/// Adapter tensors as named host buffers.
pub fn adapter_tensors(params: &Params) -> Vec<HostTensor> {
    params
        .names
        .iter()
        .zip(params.values)
        .map(|((n, s), v)| HostTensor {
            name: n.clone(),
            shape: s.clone(),
            data: v.clone(),
        })
        .collect()
}

/// Write a checkpoint for `state.step` atomically and prune old ones. Returns its directory.
pub fn save(
    root: &Path,
    state: &LoopState,
    params: &Params,
    adam: &AdamWState,
    config: &TrainConfig,
    metrics: &str,
    keep: usize,
) -> Result<PathBuf> {
    fs::create_dir_all(root).map_err(TrainError::io(root))?;
    let target = dir_for(root, state.step);
    let stage = root.join(format!(".staging-{:08}-{}", state.step, std::process::id()));
    if stage.exists() {
        fs::remove_dir_all(&stage).map_err(TrainError::io(&stage))?;
    }
    fs::create_dir(&stage).map_err(TrainError::io(&stage))?;

    let path = stage.join(ADAPTER_FILE);
    write_new(
        &path,
        &tensors_io::to_bytes(&adapter_tensors(params), &path)?,
    )?;
    let mut moments = Vec::with_capacity(2 * params.names.len());
    for (i, (name, shape)) in params.names.iter().enumerate() {
        moments.push(HostTensor {
            name: format!("{name}.exp_avg"),
            shape: shape.clone(),
            data: adam.m[i].clone(),
        });
        moments.push(HostTensor {
            name: format!("{name}.exp_avg_sq"),
            shape: shape.clone(),
            data: adam.v[i].clone(),
        });
    }
    let path = stage.join(OPTIMIZER_FILE);
    write_new(&path, &tensors_io::to_bytes(&moments, &path)?)?;
    write_new(&stage.join(METRICS_FILE), metrics.as_bytes())?;
    let file = StateFile {
        format: 1,
        state: state.clone(),
        adam_step: adam.step,
        vars: params.names.to_vec(),
        config: config.clone(),
    };
    let json = serde_json::to_vec_pretty(&file).map_err(|e| TrainError::checkpoint(&stage, e))?;
    write_new(&stage.join(STATE_FILE), &json)?;
    sync_dir(&stage)?;
    if target.exists() {
        fs::remove_dir_all(&target).map_err(TrainError::io(&target))?;
    }
    fs::rename(&stage, &target).map_err(TrainError::io(&target))?;
    sync_dir(root)?;
    prune(root, keep)?;
    Ok(target)
}

/// Complete checkpoints under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let Ok(entries) = fs::read_dir(root) else {
        return Ok(vec![]);
    };
    let mut out = vec![];
    for e in entries {
        let e = e.map_err(TrainError::io(root))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<usize>().ok())
        {
            out.push((step, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    Ok(list(root)?.pop().map(|(_, p)| p))
}

fn prune(root: &Path, keep: usize) -> Result<()> {
    let all = list(root)?;
    for (_, path) in all.iter().take(all.len().saturating_sub(keep)) {
        fs::remove_dir_all(path).map_err(TrainError::io(path))?;
    }
    // staging leftovers of killed runs
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            let stale = e.file_name().to_string_lossy().starts_with(".staging-");
            if stale
                && !e
                    .file_name()
                    .to_string_lossy()
                    .ends_with(&format!("-{}", std::process::id()))
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// Load a checkpoint, checking it was made for the same variables and training config.
pub fn load(dir: &Path, names: &[(String, Vec<usize>)], config: &TrainConfig) -> Result<Loaded> {
    let state_path = dir.join(STATE_FILE);
    let bytes = fs::read(&state_path).map_err(TrainError::io(&state_path))?;
    let file: StateFile =
        serde_json::from_slice(&bytes).map_err(|e| TrainError::checkpoint(&state_path, e))?;
    if file.vars != names {
        return Err(TrainError::checkpoint(
            dir,
            "made for different adapter variables (names or shapes)",
        ));
    }
    if !config.same_trajectory(&file.config) {
        return Err(TrainError::checkpoint(
            dir,
            "made with a different training config; resume needs the same one",
        ));
    }
    let numel = |s: &Vec<usize>| s.iter().product::<usize>();
    let adapter: Vec<(String, usize)> = names.iter().map(|(n, s)| (n.clone(), numel(s))).collect();
    let values = tensors_io::read(&dir.join(ADAPTER_FILE), &adapter)?;
    let moments: Vec<(String, usize)> = names
        .iter()
        .flat_map(|(n, s)| {
            [
                (format!("{n}.exp_avg"), numel(s)),
                (format!("{n}.exp_avg_sq"), numel(s)),
            ]
        })
        .collect();
    let mut mv = tensors_io::read(&dir.join(OPTIMIZER_FILE), &moments)?.into_iter();
    let (mut m, mut v) = (vec![], vec![]);
    while let (Some(a), Some(b)) = (mv.next(), mv.next()) {
        m.push(a);
        v.push(b);
    }
    let metrics_path = dir.join(METRICS_FILE);
    let metrics = fs::read_to_string(&metrics_path).map_err(TrainError::io(&metrics_path))?;
    Ok(Loaded {
        state: file.state,
        values,
        adam: AdamWState {
            step: file.adam_step,
            m,
            v,
        },
        metrics,
    })
}
