//! Saving and loading adapters in PEFT's on-disk format: a directory with `adapter_config.json`
//! and `adapter_model.safetensors`.
//!
//! Tensor names are PEFT's, without the adapter name (`get_peft_model_state_dict` strips
//! `.default`): `base_model.model.{module}.lora_A.weight` `[r, in]`,
//! `base_model.model.{module}.lora_B.weight` `[out, r]` and, for DoRA,
//! `base_model.model.{module}.lora_magnitude_vector` `[out]` (PEFT drops the `.weight` of its
//! `DoraLinearLayer`; a `.weight` suffix is accepted on load). The safetensors header metadata is
//! `{"format": "pt"}` as PEFT writes it. The config side is `peft_convert`.
//!
//! Loading checks that the file holds exactly the modules the config targets, with the ranks the
//! config gives them, and names the file and tensor when it does not; a failed load leaves the
//! model unchanged. Files are written to a temporary name and renamed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::Tensor;
use candle_core::safetensors::Load;

use super::attach::{AdaptableModel, AttachReport, install, peft_key, plan};
use super::config::AdapterConfig;
use super::dora::Dora;
use super::dropout::Dropout;
use super::error::AdapterError;
use super::init::derive_seed;
use super::linear::LinearAdapter;
use super::lora::Lora;
use super::lowrank::{LowRank, adapter_dtype};
use super::peft_config::PeftLoraConfig;
pub use super::peft_convert::{SaveOptions, ScaleExport, adapter_config_from_peft, peft_config};
use super::spec::Method;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
pub const CARD_FILE: &str = "README.md";

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AdapterError + '_ {
    move |source| AdapterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn format_err(path: &Path, msg: impl Into<String>) -> AdapterError {
    AdapterError::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Write `adapter_config.json` and `adapter_model.safetensors` into `dir` (created if needed);
/// bottleneck adapters in LLM-Adapters' layout ([`super::bottleneck_io`]). Each file is written
/// to a temporary name and renamed, so a crash never leaves half a file.
pub fn save_peft<M: AdaptableModel + ?Sized>(
    model: &M,
    cfg: &AdapterConfig,
    dir: &Path,
    opts: &SaveOptions,
) -> Result<(), AdapterError> {
    if cfg.method.is_bottleneck() {
        return super::bottleneck_io::save(model, cfg, dir, opts);
    }
    if cfg.method == Method::Prefix {
        return super::prefix_io::save(model, dir, opts);
    }
    let config = peft_config(model, cfg, opts)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
    for (path, lin) in model.linears() {
        if let Some(a) = lin.adapter() {
            for (suffix, var) in a.vars() {
                let t = var
                    .as_tensor()
                    .detach()
                    .to_device(&candle_core::Device::Cpu);
                let t = t.map_err(AdapterError::tensor(&path))?;
                tensors.insert(peft_key(&path, suffix), t);
            }
        }
    }
    let tensors: Vec<(String, Tensor)> = tensors.into_iter().collect();
    write_weights(dir, &tensors, false)?;
    let json = serde_json::to_vec_pretty(&config).map_err(|source| AdapterError::Json {
        path: dir.join(CONFIG_FILE),
        source,
    })?;
    write_atomic(&dir.join(CONFIG_FILE), &json)?;
    write_atomic(&dir.join(CARD_FILE), model_card(&config, cfg).as_bytes())?;
    Ok(())
}

/// The model card PEFT's `save_pretrained` writes beside an adapter, with the same YAML front
/// matter (`base_model`, `library_name: peft`, `pipeline_tag`, `tags`: `base_model:adapter:<id>`,
/// `lora`, `transformers`; PEFT 0.21.2) and, instead of PEFT's empty template, what rora knows:
/// the method, scale, targets and how to load it. Without a base model name (a local or pruned
/// base) the `base_model` keys are left out.
pub fn model_card(config: &PeftLoraConfig, cfg: &AdapterConfig) -> String {
    let mut front = String::from("---\n");
    if let Some(b) = &config.base_model_name_or_path {
        front.push_str(&format!("base_model: {b}\n"));
    }
    front.push_str("library_name: peft\npipeline_tag: text-generation\ntags:\n");
    if let Some(b) = &config.base_model_name_or_path {
        front.push_str(&format!("- base_model:adapter:{b}\n"));
    }
    front.push_str("- lora\n- transformers\n- rora\n---\n");
    let method = match (cfg.method, cfg.rule) {
        (Method::Dora, _) => "DoRA (weight-decomposed low-rank adaptation)",
        (Method::Lora, super::scaling::ScalingRule::Rora) => "RoRA / rsLoRA (scale alpha/sqrt(r))",
        (Method::Lora, _) => "LoRA",
        (Method::Series, _) => "Series bottleneck",
        (Method::Parallel, _) => "Parallel bottleneck",
        (Method::Prefix, _) => "Prefix tuning",
    };
    let base = match (&config.base_model_name_or_path, &config.revision) {
        (Some(b), Some(r)) => format!("`{b}` at revision `{r}`"),
        (Some(b), None) => format!("`{b}`"),
        _ => "a local or pruned model (not named on the hub; pass it to PeftModel yourself)".into(),
    };
    let load = match &config.base_model_name_or_path {
        Some(_) => "from peft import AutoPeftModelForCausalLM\n\nmodel = AutoPeftModelForCausalLM.from_pretrained(\"path/to/this/folder\")\n".to_string(),
        None => "from peft import PeftModel\nfrom transformers import AutoModelForCausalLM\n\nbase = AutoModelForCausalLM.from_pretrained(\"path/to/the/base/model\")\nmodel = PeftModel.from_pretrained(base, \"path/to/this/folder\")\n".to_string(),
    };
    format!(
        "{front}\n# Adapter\n\nA {method} adapter for {base}, written by rora in PEFT's layout.\n\n\
         - **Rank:** {r}\n- **Alpha:** {alpha}\n- **Scale:** {scale} ({rule})\n- **Targets:** {targets}\n\n\
         ## How to load\n\n```python\n{load}```\n\n### Framework versions\n\n- rora {version}\n",
        r = cfg.rank,
        alpha = cfg.alpha,
        scale = cfg.rule.scale(cfg.alpha, cfg.rank),
        rule = cfg.rule.name(),
        targets = cfg.targets_description(),
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// Write `tensors` (f32, on the CPU) as `adapter_model.safetensors` with PEFT's `{"format": "pt"}`
/// metadata and, with `bin`, as `adapter_model.bin` in `torch.save`'s format (what LLM-Adapters
/// reads). Each file is written to a temporary name and renamed.
pub(super) fn write_weights(
    dir: &Path,
    tensors: &[(String, Tensor)],
    bin: bool,
) -> Result<(), AdapterError> {
    let weights = dir.join(WEIGHTS_FILE);
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes =
        safetensors::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t)), Some(metadata))
            .map_err(|e| format_err(&weights, format!("cannot serialize: {e}")))?;
    write_atomic(&weights, &bytes)?;
    if bin {
        let path = dir.join(super::bottleneck_io::BIN_FILE);
        let bytes = super::torch_bin::serialize(tensors)
            .map_err(|e| format_err(&path, format!("cannot serialize: {e}")))?;
        write_atomic(&path, &bytes)?;
    }
    Ok(())
}

/// Write `value` as pretty JSON to `path` (temporary name, then renamed).
pub(super) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), AdapterError> {
    let json = serde_json::to_vec_pretty(value).map_err(|source| AdapterError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &json)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AdapterError> {
    crate::fsx::write_atomic(path, bytes).map_err(io(path))
}

/// What [`load_peft`] installed.
#[derive(Debug, Clone)]
pub struct LoadedPeft {
    pub config: AdapterConfig,
    /// PEFT's LoRA config (`None` for an LLM-Adapters bottleneck folder).
    pub peft: Option<PeftLoraConfig>,
    pub report: AttachReport,
}

/// The `peft_type` of the adapter folder `dir`.
fn peft_type(dir: &Path) -> Result<Option<String>, AdapterError> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read(&config_path).map_err(io(&config_path))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|source| AdapterError::Json {
            path: config_path.clone(),
            source,
        })?;
    Ok(v.get("peft_type")
        .and_then(|t| t.as_str())
        .map(str::to_string))
}

/// rora's config of the adapter folder `dir`: a PEFT LoRA/DoRA folder ([`read_peft_config`]) or
/// an LLM-Adapters bottleneck folder; what rora does not implement is refused naming the field.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig, AdapterError> {
    match peft_type(dir)?.as_deref() {
        Some(super::bottleneck_io::PEFT_TYPE) => return read_bottleneck_config(dir),
        Some(super::prefix_io::PEFT_TYPE) => return Ok(read_prefix_config(dir)?.1),
        _ => {}
    }
    Ok(read_peft_config(dir)?.1)
}

fn read_prefix_config(
    dir: &Path,
) -> Result<(super::prefix_io::PrefixFile, AdapterConfig), AdapterError> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read(&config_path).map_err(io(&config_path))?;
    let file: super::prefix_io::PrefixFile =
        serde_json::from_slice(&text).map_err(|source| AdapterError::Json {
            path: config_path.clone(),
            source,
        })?;
    let c = super::prefix_io::adapter_config(&file, &config_path)?;
    Ok((file, c))
}

fn read_bottleneck_config(dir: &Path) -> Result<AdapterConfig, AdapterError> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read(&config_path).map_err(io(&config_path))?;
    let file: super::bottleneck_io::BottleneckFile =
        serde_json::from_slice(&text).map_err(|source| AdapterError::Json {
            path: config_path.clone(),
            source,
        })?;
    super::bottleneck_io::adapter_config(&file, &config_path)
}

/// Read and convert the `adapter_config.json` of a PEFT adapter directory, refusing what rora does
/// not implement (the error names the file and field); no weights are read.
pub fn read_peft_config(dir: &Path) -> Result<(PeftLoraConfig, AdapterConfig), AdapterError> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read(&config_path).map_err(io(&config_path))?;
    let peft: PeftLoraConfig =
        serde_json::from_slice(&text).map_err(|source| AdapterError::Json {
            path: config_path.clone(),
            source,
        })?;
    let config = adapter_config_from_peft(&peft, &config_path)?;
    config
        .validate()
        .map_err(|e| format_err(&config_path, e.to_string()))?;
    Ok((peft, config))
}

/// Read a PEFT adapter directory and install its adapters on `model`.
pub fn load_peft<M: AdaptableModel + ?Sized>(
    model: &mut M,
    dir: &Path,
) -> Result<LoadedPeft, AdapterError> {
    if peft_type(dir)?.as_deref() == Some(super::prefix_io::PEFT_TYPE) {
        let (file, config) = read_prefix_config(dir)?;
        let report = super::prefix_io::load(model, dir, &file, &dir.join(CONFIG_FILE))?;
        return Ok(LoadedPeft {
            config,
            peft: None,
            report,
        });
    }
    if peft_type(dir)?.as_deref() == Some(super::bottleneck_io::PEFT_TYPE) {
        let config = read_bottleneck_config(dir)?;
        let report = super::bottleneck_io::load(model, dir, &config)?;
        return Ok(LoadedPeft {
            config,
            peft: None,
            report,
        });
    }
    let (peft, config) = read_peft_config(dir)?;
    let shapes: Vec<(String, (usize, usize))> = model
        .linears()
        .into_iter()
        .map(|(p, l)| (p, l.shape()))
        .collect();
    let report = plan(&shapes, &config)?;

    let weights = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights).map_err(io(&weights))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format_err(&weights, format!("not a valid safetensors file: {e}")))?;
    let mut by_module = group_tensors(&st, &weights)?;

    let mut adapters: Vec<(String, Box<dyn LinearAdapter>)> = Vec::new();
    {
        let linears = model.linears();
        for m in &report.modules {
            let Some(found) = by_module.remove(&m.path) else {
                return Err(format_err(
                    &weights,
                    format!("no tensors for targeted module {}", m.path),
                ));
            };
            let Some((_, lin)) = linears.iter().find(|(p, _)| *p == m.path) else {
                continue;
            };
            let w = lin.weight();
            let (dtype, device) = (adapter_dtype(w.dtype()), w.device());
            let get = |suffix: &str| -> Result<Tensor, AdapterError> {
                let key = peft_key(&m.path, suffix);
                let view = found
                    .get(suffix)
                    .ok_or_else(|| format_err(&weights, format!("missing tensor {key}")))?;
                let t = view.load(device).and_then(|t| t.to_dtype(dtype));
                t.map_err(|e| format_err(&weights, format!("tensor {key}: {e}")))
            };
            let (a, b) = (get("lora_A.weight")?, get("lora_B.weight")?);
            let (out, inp) = m.shape;
            let r = m.spec.rank;
            for (name, t, want) in [
                ("lora_A.weight", &a, [r, inp]),
                ("lora_B.weight", &b, [out, r]),
            ] {
                if t.dims() != want {
                    return Err(format_err(
                        &weights,
                        format!(
                            "tensor {}: shape {:?}, expected {want:?} (r={r} from the config)",
                            peft_key(&m.path, name),
                            t.dims()
                        ),
                    ));
                }
            }
            let dropout =
                Dropout::new(config.dropout, derive_seed(config.seed, &m.path, "dropout"));
            let low =
                LowRank::new(m.spec, &a, &b, dropout).map_err(AdapterError::tensor(&m.path))?;
            let adapter: Box<dyn LinearAdapter> = match m.spec.method {
                Method::Lora => {
                    if found.contains_key("lora_magnitude_vector") {
                        return Err(format_err(
                            &weights,
                            format!("{}: DoRA magnitude present but use_dora=false", m.path),
                        ));
                    }
                    Box::new(Lora::new(low))
                }
                Method::Dora => {
                    let mag = get("lora_magnitude_vector")?;
                    let d = Dora::new(low, &mag, out).map_err(|e| {
                        format_err(
                            &weights,
                            format!("tensor {}: {e}", peft_key(&m.path, "lora_magnitude_vector")),
                        )
                    })?;
                    Box::new(d)
                }
                Method::Series | Method::Parallel | Method::Prefix => {
                    return Err(format_err(
                        &weights,
                        "a PEFT LoRA config describes another method",
                    ));
                }
            };
            adapters.push((m.path.clone(), adapter));
        }
    }
    if let Some((path, _)) = by_module.into_iter().next() {
        return Err(format_err(
            &weights,
            format!("tensors for {path}, which the config does not target"),
        ));
    }
    install(model, adapters)?;
    Ok(LoadedPeft {
        config,
        peft: Some(peft),
        report,
    })
}

type ModuleTensors<'a> =
    BTreeMap<String, BTreeMap<&'static str, safetensors::tensor::TensorView<'a>>>;

/// Split `base_model.model.{module}.{suffix}` keys by module; unknown keys are errors.
fn group_tensors<'a>(
    st: &safetensors::SafeTensors<'a>,
    path: &Path,
) -> Result<ModuleTensors<'a>, AdapterError> {
    const SUFFIXES: [(&str, &str); 4] = [
        (".lora_A.weight", "lora_A.weight"),
        (".lora_B.weight", "lora_B.weight"),
        (".lora_magnitude_vector.weight", "lora_magnitude_vector"),
        (".lora_magnitude_vector", "lora_magnitude_vector"),
    ];
    let mut out: ModuleTensors<'a> = BTreeMap::new();
    for (key, view) in st.tensors() {
        let Some(rest) = key.strip_prefix("base_model.model.") else {
            return Err(format_err(
                path,
                format!("tensor {key}: expected a name starting with base_model.model."),
            ));
        };
        let Some((module, suffix)) = SUFFIXES
            .iter()
            .find_map(|(end, s)| rest.strip_suffix(end).map(|m| (m.to_string(), *s)))
        else {
            return Err(format_err(
                path,
                format!(
                    "tensor {key}: not a LoRA/DoRA tensor (lora_A, lora_B, lora_magnitude_vector)"
                ),
            ));
        };
        out.entry(module).or_default().insert(suffix, view);
    }
    Ok(out)
}
