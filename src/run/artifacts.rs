//! What each stage kind leaves in its entry's `out/`, and how the next stage reads it back.
//! The one place that knows these file names.
//!
//! | kind    | out/                                                                 |
//! |---------|----------------------------------------------------------------------|
//! | model   | `model/` (HF dir: config.json, model.safetensors, tokenizer.json)     |
//! | data    | `data.json` (the resolved data config and per-task row counts)        |
//! | adapter | `adapter/` (PEFT dir, fresh init), `adapter.json` (the full config)   |
//! | train   | `adapter/` (PEFT dir, trained), `adapter.json`, `metrics.jsonl`, `runs/` (TensorBoard), `summary.json` |
//! | merge   | `model/` (HF dir with the adapter merged in)                          |
//! | eval    | `results.json`, `predictions.jsonl`                                   |
//! | report  | `table.{md,csv,json}`, plots `*.png`, `*.svg`                         |
//! | tokens  | `dataset/` (a `TokenizedDataset`), one planned job per (data, model) pair |

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use crate::adapter::{AdapterConfig, load_peft};
use crate::cache::Entry;
use crate::model::{LoadOptions, LoadedModel, ModelSource, load};

use super::error::{Result, RunError, io};

pub const MODEL_DIR: &str = "model";
pub const ADAPTER_DIR: &str = "adapter";
pub const ADAPTER_CONFIG: &str = "adapter.json";
pub const DATA_CONFIG: &str = "data.json";
pub const METRICS: &str = "metrics.jsonl";
/// The train stage's TensorBoard event file (`runs/events.out.tfevents.*`).
pub const TENSORBOARD_DIR: &str = "runs";
pub const TRAIN_SUMMARY: &str = "summary.json";
pub const RESULTS: &str = "results.json";
pub const PREDICTIONS: &str = "predictions.jsonl";
pub const DATASET_DIR: &str = "dataset";

/// Load the HF model dir an entry holds (`model` and `merge` stages).
pub fn load_model(entry: &Entry, dtype: DType, device: &Device) -> Result<LoadedModel> {
    let dir = entry.file(MODEL_DIR);
    let opts = LoadOptions {
        dtype,
        device: device.clone(),
    };
    Ok(load(&ModelSource::HfDir(dir), &opts)?)
}

/// Read the full adapter config an `adapter` or `train` entry holds.
pub fn adapter_config(entry: &Entry) -> Result<AdapterConfig> {
    read_json(&entry.file(ADAPTER_CONFIG))
}

/// Install the adapter an `adapter` or `train` entry holds on `model`.
pub fn install_adapter(model: &mut LoadedModel, entry: &Entry) -> Result<()> {
    load_peft(&mut model.model, &entry.file(ADAPTER_DIR))?;
    Ok(())
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&bytes).map_err(|source| RunError::Json {
        path: path.to_path_buf(),
        source,
    })
}

pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| RunError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, bytes).map_err(io(path))
}

/// `dir/name`, created.
pub fn subdir(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::create_dir_all(&p).map_err(io(&p))?;
    Ok(p)
}

/// The dtype the HF model dir of a `model`, `prune` or `merge` entry was saved in (its config's
/// `torch_dtype`; f32 when absent): the `model` stage's `dtype` is the compute dtype of the frozen
/// base, so the train stage loads the base in it (adapters and optimizer state stay f32).
pub fn stored_dtype(entry: &Entry) -> Result<DType> {
    let cfg: serde_json::Value = read_json(&entry.file(MODEL_DIR).join("config.json"))?;
    Ok(match cfg.get("torch_dtype").and_then(|v| v.as_str()) {
        Some("bfloat16") => DType::BF16,
        Some("float16") => DType::F16,
        _ => DType::F32,
    })
}

/// What a user should know about an entry's outputs before handing them to other tools
/// (`rora show-output`): a model folder with per-layer dimensions is one transformers cannot
/// load.
pub fn notes(entry: &Entry) -> Vec<String> {
    let mut out = Vec::new();
    let cfg = entry.file(MODEL_DIR).join("config.json");
    if let Ok(v) = read_json::<serde_json::Value>(&cfg)
        && v.get("rora_layer_dims").is_some()
    {
        out.push(format!(
            "{MODEL_DIR}/ is structurally pruned (layers of different widths, `rora_layer_dims` \
             in config.json): rora and candle load it, transformers' LlamaForCausalLM cannot \
             (it has one width for every layer); see {MODEL_DIR}/README.md"
        ));
    }
    out
}
