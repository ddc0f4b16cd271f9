//! Bottleneck adapters on disk in LLM-Adapters' layout (`peft/src/peft/tuners/bottleneck.py`
//! `BottleneckConfig`, `utils/save_and_load.py`; commit 8166572):
//!
//! - `adapter_config.json` with `peft_type` `"BOTTLENECK"`, `bottleneck_size`, `non_linearity`,
//!   `adapter_dropout`, `use_parallel_adapter`, `use_adapterp`, `scaling` (a number, written as
//!   a float, or `"learned"`), `init_weights` (`"bert"` / `"mam_adapter"`), `target_modules`,
//!   `bias` `"none"`, `modules_to_save` null, `task_type` `"CAUSAL_LM"`;
//! - tensors `base_model.model.{module}.adapter_down.weight` `[b, d_in]`,
//!   `...adapter_up.weight` `[d_out, b]` and, for a learned scale, `...adapter_scaling` `[1]`,
//!   f32, written twice: `adapter_model.bin` (torch's format, the only file LLM-Adapters reads)
//!   and `adapter_model.safetensors` (`{"format": "pt"}`, what rora and safetensors tools read).
//!
//! Loading reads the safetensors file, else the `.bin`. `target_modules` as a list matches by
//! suffix (`key.endswith(t)`, no dot boundary) and as a string by `re.fullmatch`, as LLM-Adapters
//! matches them; without `target_modules` LLM-Adapters' LLaMA defaults apply (series:
//! gate/up/down, `use_adapterp`: down, parallel: q/v/k), as `get_peft_model` would fill them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::attach::{AdaptableModel, AttachReport, install, peft_key, plan};
use super::bottleneck::{Activation, Bottleneck, Placement};
use super::config::{AdapterConfig, Targets};
use super::dropout::Dropout;
use super::error::AdapterError;
use super::init::{LoraInit, derive_seed};
use super::linear::LinearAdapter;
use super::lowrank::adapter_dtype;
use super::peft_convert::SaveOptions;
use super::peft_io::{CONFIG_FILE, WEIGHTS_FILE, format_err, io, write_json, write_weights};
use super::scaling::ScalingRule;
use super::spec::Method;
use crate::model::config::PROJECTIONS;

pub const BIN_FILE: &str = "adapter_model.bin";
pub const PEFT_TYPE: &str = "BOTTLENECK";

/// LLM-Adapters' `BottleneckConfig` as its `save_pretrained` writes it (keys sorted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BottleneckFile {
    #[serde(default)]
    pub adapter_dropout: f64,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default = "none")]
    pub bias: String,
    #[serde(default = "default_size")]
    pub bottleneck_size: usize,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default = "bert")]
    pub init_weights: String,
    #[serde(default)]
    pub modules_to_save: Option<serde_json::Value>,
    #[serde(default = "tanh")]
    pub non_linearity: String,
    pub peft_type: String,
    #[serde(default = "one")]
    pub scaling: serde_json::Value,
    #[serde(default)]
    pub target_modules: Option<serde_json::Value>,
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub use_adapterp: bool,
    #[serde(default)]
    pub use_parallel_adapter: bool,
}

fn none() -> String {
    "none".into()
}
fn default_size() -> usize {
    256
}
fn bert() -> String {
    "bert".into()
}
fn tanh() -> String {
    "tanh".into()
}
fn one() -> serde_json::Value {
    serde_json::json!(1.0)
}

/// The file config describing the adapters `cfg` attached to `model`.
pub fn file_config<M: AdaptableModel + ?Sized>(
    model: &M,
    cfg: &AdapterConfig,
    opts: &SaveOptions,
) -> Result<BottleneckFile, AdapterError> {
    let all: Vec<String> = model.linears().into_iter().map(|(p, _)| p).collect();
    let adapted: BTreeSet<String> = model
        .linears()
        .into_iter()
        .filter(|(_, l)| l.adapter().is_some())
        .map(|(p, _)| p)
        .collect();
    if adapted.is_empty() {
        return Err(AdapterError::NoTargetMatched {
            targets: cfg.targets_description(),
            available: "the model carries no adapter to save".into(),
        });
    }
    let short = |p: &str| p.rsplit('.').next().unwrap_or(p).to_string();
    let names: BTreeSet<String> = adapted.iter().map(|p| short(p)).collect();
    let product: BTreeSet<String> = all
        .iter()
        .filter(|p| names.contains(&short(p)))
        .cloned()
        .collect();
    // names where they mean exactly the adapted set, else every module path (LLM-Adapters has
    // no layer selection; a full path matches only itself under its suffix rule)
    let targets: Vec<String> = if product == adapted {
        PROJECTIONS
            .iter()
            .filter(|p| names.contains(**p))
            .map(|p| p.to_string())
            .collect()
    } else {
        all.into_iter().filter(|p| adapted.contains(p)).collect()
    };
    let scaling = match cfg.rule {
        ScalingRule::Learned(_) => serde_json::json!("learned"),
        rule => serde_json::json!(rule.scale(cfg.alpha, cfg.rank)),
    };
    Ok(BottleneckFile {
        adapter_dropout: cfg.dropout,
        base_model_name_or_path: opts.base_model_name_or_path.clone(),
        bias: none(),
        bottleneck_size: cfg.rank,
        inference_mode: true,
        init_weights: match cfg.init {
            LoraInit::Mam => "mam_adapter".into(),
            _ => bert(),
        },
        modules_to_save: None,
        non_linearity: cfg.activation.name().into(),
        peft_type: PEFT_TYPE.into(),
        scaling,
        target_modules: Some(serde_json::json!(targets)),
        task_type: Some("CAUSAL_LM".into()),
        use_adapterp: false,
        use_parallel_adapter: cfg.method == Method::Parallel,
    })
}

/// rora's config for an LLM-Adapters bottleneck config read from `path`; what rora does not
/// implement is refused naming the field.
pub fn adapter_config(f: &BottleneckFile, path: &Path) -> Result<AdapterConfig, AdapterError> {
    let bad = |field: &str, msg: String| format_err(path, format!("{field}: {msg}"));
    if f.bias != "none" {
        return Err(bad(
            "bias",
            format!(
                "{:?} trains the base biases; rora implements \"none\"",
                f.bias
            ),
        ));
    }
    if f.modules_to_save.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(bad(
            "modules_to_save",
            "full copies of base modules are not implemented".into(),
        ));
    }
    let activation = Activation::from_name(&f.non_linearity).ok_or_else(|| {
        bad(
            "non_linearity",
            format!(
                "{:?} is not one rora implements (tanh, relu, silu, gelu)",
                f.non_linearity
            ),
        )
    })?;
    let init = match f.init_weights.as_str() {
        "bert" => LoraInit::Bert,
        "mam_adapter" => LoraInit::Mam,
        other => {
            return Err(bad(
                "init_weights",
                format!("{other:?}: LLM-Adapters knows \"bert\" and \"mam_adapter\""),
            ));
        }
    };
    let rule = match &f.scaling {
        serde_json::Value::String(s) if s == "learned" => ScalingRule::Learned(1.0),
        serde_json::Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => {
            ScalingRule::Fixed(n.as_f64().unwrap_or(1.0))
        }
        other => {
            return Err(bad(
                "scaling",
                format!("{other}: expected a number or \"learned\""),
            ));
        }
    };
    if f.bottleneck_size == 0 {
        return Err(bad("bottleneck_size", "must be at least 1".into()));
    }
    let method = if f.use_parallel_adapter {
        Method::Parallel
    } else {
        Method::Series
    };
    let names = |v: &[&str]| Targets::Names(v.iter().map(|s| s.to_string()).collect());
    let targets = match &f.target_modules {
        None | Some(serde_json::Value::Null) => match (f.use_parallel_adapter, f.use_adapterp) {
            (true, _) => names(&["q_proj", "v_proj", "k_proj"]),
            (false, true) => names(&["down_proj"]),
            (false, false) => names(&["gate_proj", "up_proj", "down_proj"]),
        },
        Some(serde_json::Value::String(r)) => Targets::Regex(r.clone()),
        Some(serde_json::Value::Array(a)) => {
            let list: Vec<String> = a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("target_modules", "expected a list of strings".into()))?;
            if list.is_empty() {
                return Err(bad("target_modules", "is empty".into()));
            }
            if list.iter().all(|t| PROJECTIONS.contains(&t.as_str())) {
                // a projection name is a suffix of no other: endswith == dotted suffix
                Targets::Names(list)
            } else {
                let alts: Vec<String> = list.iter().map(|t| regex::escape(t)).collect();
                Targets::Regex(format!(".*(?:{})", alts.join("|")))
            }
        }
        Some(other) => {
            return Err(bad(
                "target_modules",
                format!("{other}: expected a list or a string"),
            ));
        }
    };
    let mut c = AdapterConfig::bottleneck(method, f.bottleneck_size, rule, targets);
    c.activation = activation;
    c.init = init;
    c.dropout = f.adapter_dropout;
    c.validate().map_err(|e| format_err(path, e.to_string()))?;
    Ok(c)
}

/// Write `adapter_config.json`, `adapter_model.bin` and `adapter_model.safetensors`.
pub fn save<M: AdaptableModel + ?Sized>(
    model: &M,
    cfg: &AdapterConfig,
    dir: &Path,
    opts: &SaveOptions,
) -> Result<(), AdapterError> {
    let config = file_config(model, cfg, opts)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (path, lin) in model.linears() {
        if let Some(a) = lin.adapter() {
            for (suffix, var) in a.vars() {
                let t = var
                    .as_tensor()
                    .detach()
                    .to_device(&candle_core::Device::Cpu)
                    .and_then(|t| t.to_dtype(candle_core::DType::F32))
                    .map_err(AdapterError::tensor(&path))?;
                tensors.push((peft_key(&path, suffix), t));
            }
        }
    }
    write_weights(dir, &tensors, true)?;
    write_json(&dir.join(CONFIG_FILE), &config)
}

/// The tensors of an adapter folder: `adapter_model.safetensors`, else `adapter_model.bin`.
pub(super) fn read_tensors(
    dir: &Path,
) -> Result<(std::path::PathBuf, Vec<(String, Tensor)>), AdapterError> {
    let st = dir.join(WEIGHTS_FILE);
    if st.exists() {
        let t = candle_core::safetensors::load(&st, &candle_core::Device::Cpu)
            .map_err(|e| format_err(&st, format!("not a valid safetensors file: {e}")))?;
        return Ok((st, t.into_iter().collect()));
    }
    let bin = dir.join(BIN_FILE);
    if !bin.exists() {
        return Err(format_err(
            dir,
            format!("neither {} nor {BIN_FILE} is here", WEIGHTS_FILE),
        ));
    }
    let t = candle_core::pickle::read_all(&bin)
        .map_err(|e| format_err(&bin, format!("not a torch weights file: {e}")))?;
    Ok((bin, t))
}

/// Install the bottleneck adapters of `dir` (config already read) on `model`.
pub fn load<M: AdaptableModel + ?Sized>(
    model: &mut M,
    dir: &Path,
    config: &AdapterConfig,
) -> Result<AttachReport, AdapterError> {
    let shapes: Vec<(String, (usize, usize))> = model
        .linears()
        .into_iter()
        .map(|(p, l)| (p, l.shape()))
        .collect();
    let report = plan(&shapes, config)?;
    let (file, tensors) = read_tensors(dir)?;
    const SUFFIXES: [&str; 3] = [
        "adapter_down.weight",
        "adapter_up.weight",
        "adapter_scaling",
    ];
    let mut by_module: BTreeMap<String, BTreeMap<&'static str, Tensor>> = BTreeMap::new();
    for (key, t) in tensors {
        let found = key.strip_prefix("base_model.model.").and_then(|rest| {
            SUFFIXES.iter().find_map(|s| {
                rest.strip_suffix(s)
                    .and_then(|m| m.strip_suffix('.'))
                    .map(|m| (m.to_string(), *s))
            })
        });
        let Some((module, suffix)) = found else {
            return Err(format_err(
                &file,
                format!(
                    "tensor {key}: not a bottleneck adapter tensor (base_model.model.<module>.adapter_down.weight, adapter_up.weight, adapter_scaling)"
                ),
            ));
        };
        by_module.entry(module).or_default().insert(suffix, t);
    }
    let mut adapters: Vec<(String, Box<dyn LinearAdapter>)> = Vec::new();
    {
        let linears = model.linears();
        for m in &report.modules {
            let Some(mut found) = by_module.remove(&m.path) else {
                return Err(format_err(
                    &file,
                    format!("no tensors for targeted module {}", m.path),
                ));
            };
            let Some((_, lin)) = linears.iter().find(|(p, _)| *p == m.path) else {
                continue;
            };
            let w = lin.weight();
            let (dtype, device) = (adapter_dtype(w.dtype()), w.device());
            let mut get = |suffix: &'static str| -> Result<Option<Tensor>, AdapterError> {
                found
                    .remove(suffix)
                    .map(|t| t.to_device(device).and_then(|t| t.to_dtype(dtype)))
                    .transpose()
                    .map_err(|e| {
                        format_err(&file, format!("tensor {}: {e}", peft_key(&m.path, suffix)))
                    })
            };
            let missing =
                |s: &str| format_err(&file, format!("missing tensor {}", peft_key(&m.path, s)));
            let down = get("adapter_down.weight")?.ok_or_else(|| missing("adapter_down.weight"))?;
            let up = get("adapter_up.weight")?.ok_or_else(|| missing("adapter_up.weight"))?;
            let scale = get("adapter_scaling")?;
            let placement =
                Placement::of(m.spec.method, &m.path).ok_or_else(|| AdapterError::NoPlacement {
                    module: m.path.clone(),
                    method: m.spec.method.name(),
                })?;
            let dropout =
                Dropout::new(config.dropout, derive_seed(config.seed, &m.path, "dropout"));
            let b = Bottleneck::new(
                m.spec,
                placement,
                config.activation,
                m.shape,
                &down,
                &up,
                scale.as_ref(),
                dropout,
            )
            .map_err(|e| format_err(&file, format!("{}: {e}", m.path)))?;
            adapters.push((m.path.clone(), Box::new(b)));
        }
    }
    if let Some((path, _)) = by_module.into_iter().next() {
        return Err(format_err(
            &file,
            format!("tensors for {path}, which the config does not target"),
        ));
    }
    install(model, adapters)?;
    Ok(report)
}
