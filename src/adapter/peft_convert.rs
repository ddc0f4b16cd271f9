//! Conversion between rora's [`AdapterConfig`] and PEFT's `adapter_config.json` ([`PeftLoraConfig`]).
//!
//! Scaling: a `lora` adapter is described with `use_rslora=false`, `rora` with `use_rslora=true`
//! (identical scale). [`ScaleExport::Baked`] writes `lora_alpha = s * r` and `use_rslora=false`
//! instead (per module through `alpha_pattern` where rank or alpha differ), for consumers that
//! ignore `use_rslora`; a `fixed` scale can only be written that way. Reading gives the same scale
//! either way. Targets are written as short names (+ `layers_to_transform`) when the adapted set
//! is "these names in these layers", otherwise as full module paths.

use std::collections::BTreeSet;
use std::path::Path;

use super::attach::AdaptableModel;
use super::config::{AdapterConfig, Targets, layer_index};
use super::error::AdapterError;
use super::init::LoraInit;
use super::peft_config::{Num, Ordered, PeftLayers, PeftLoraConfig, PeftTargets};
use super::scaling::ScalingRule;
use super::spec::{AdapterSpec, Method};

/// How the scale is expressed in the exported config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScaleExport {
    /// `use_rslora` carries the rule (fixed scales are baked).
    #[default]
    Native,
    /// `lora_alpha = s * r`, `use_rslora = false`.
    Baked,
}

#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    pub scale: ScaleExport,
    pub base_model_name_or_path: Option<String>,
    pub revision: Option<String>,
}

fn format_err(path: &Path, msg: impl Into<String>) -> AdapterError {
    AdapterError::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// The PEFT config describing the adapters of `model` that `cfg` attached.
pub fn peft_config<M: AdaptableModel + ?Sized>(
    model: &M,
    cfg: &AdapterConfig,
    opts: &SaveOptions,
) -> Result<PeftLoraConfig, AdapterError> {
    let all: Vec<String> = model.linears().into_iter().map(|(p, _)| p).collect();
    let adapted: Vec<(String, AdapterSpec)> = model
        .linears()
        .into_iter()
        .filter_map(|(p, l)| l.adapter().map(|a| (p, a.spec())))
        .collect();
    if adapted.is_empty() {
        return Err(AdapterError::NoTargetMatched {
            targets: cfg.targets_description(),
            available: "the model carries no adapter to save".into(),
        });
    }
    let bake = opts.scale == ScaleExport::Baked || matches!(cfg.rule, ScalingRule::Fixed(_));
    let (lora_alpha, alpha_pattern): (f64, Vec<(String, Num)>) = if bake {
        let global = cfg.rule.scale(cfg.alpha, cfg.rank) * cfg.rank as f64;
        let per_module = adapted
            .iter()
            .map(|(p, s)| (p, s.scale() * s.rank as f64))
            .filter(|(_, a)| (a - global).abs() > 1e-12 * global.abs())
            .map(|(p, a)| (regex::escape(p), Num(a)))
            .collect();
        (global, per_module)
    } else {
        (
            cfg.alpha,
            cfg.alpha_pattern
                .iter()
                .map(|(p, a)| (p.clone(), Num(*a)))
                .collect(),
        )
    };
    let (target_modules, layers) = describe_targets(&all, &adapted);
    let mut other = serde_json::Map::new();
    other.insert("auto_mapping".into(), serde_json::Value::Null);
    Ok(PeftLoraConfig {
        alpha_pattern: Ordered(alpha_pattern),
        base_model_name_or_path: opts.base_model_name_or_path.clone(),
        bias: "none".into(),
        fan_in_fan_out: false,
        inference_mode: true,
        init_lora_weights: cfg.init.peft_value(),
        layers_pattern: None,
        layers_to_transform: layers.map(PeftLayers::List),
        lora_alpha: Num(lora_alpha),
        lora_dropout: cfg.dropout,
        modules_to_save: None,
        peft_type: "LORA".into(),
        r: cfg.rank,
        rank_pattern: Ordered(cfg.rank_pattern.clone()),
        revision: opts.revision.clone(),
        target_modules: Some(target_modules),
        task_type: Some("CAUSAL_LM".into()),
        use_dora: cfg.method == Method::Dora,
        use_rslora: !bake && cfg.rule == ScalingRule::Rora,
        other,
    })
}

/// Short names (+ layer list) when the adapted set is exactly "these names in these layers",
/// otherwise the full module paths (PEFT matches a target equal to the whole path).
fn describe_targets(
    all: &[String],
    adapted: &[(String, AdapterSpec)],
) -> (PeftTargets, Option<Vec<usize>>) {
    let short = |p: &str| p.rsplit('.').next().unwrap_or(p).to_string();
    let names: BTreeSet<String> = adapted.iter().map(|(p, _)| short(p)).collect();
    let layers: BTreeSet<Option<usize>> = adapted.iter().map(|(p, _)| layer_index(p)).collect();
    let product: BTreeSet<&str> = all
        .iter()
        .filter(|p| names.contains(&short(p.as_str())) && layers.contains(&layer_index(p)))
        .map(String::as_str)
        .collect();
    let chosen: BTreeSet<&str> = adapted.iter().map(|(p, _)| p.as_str()).collect();
    let all_layers: BTreeSet<Option<usize>> = all.iter().map(|p| layer_index(p)).collect();
    if product == chosen && layers.iter().all(Option::is_some) {
        let list = if layers == all_layers {
            None
        } else {
            Some(layers.into_iter().flatten().collect())
        };
        (PeftTargets::List(names.into_iter().collect()), list)
    } else {
        (
            PeftTargets::List(chosen.into_iter().map(str::to_string).collect()),
            None,
        )
    }
}

/// The rora config equivalent to a PEFT config (`use_rslora` -> `rora`, else `lora`).
pub fn adapter_config_from_peft(
    peft: &PeftLoraConfig,
    path: &Path,
) -> Result<AdapterConfig, AdapterError> {
    if peft.peft_type != "LORA" {
        return Err(format_err(
            path,
            format!(
                "peft_type {:?} is not supported (only LORA)",
                peft.peft_type
            ),
        ));
    }
    if peft.bias != "none" {
        return Err(format_err(
            path,
            format!("bias {:?} is not supported (only \"none\")", peft.bias),
        ));
    }
    if peft.fan_in_fan_out {
        return Err(format_err(
            path,
            "fan_in_fan_out=true is not supported (LLaMA layers are nn.Linear)",
        ));
    }
    if peft.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(format_err(path, "modules_to_save is not supported"));
    }
    let targets = match &peft.target_modules {
        Some(PeftTargets::One(s)) if s == "all-linear" => Targets::AllLinear,
        Some(PeftTargets::One(s)) => Targets::Regex(s.clone()),
        Some(PeftTargets::List(l)) => Targets::Names(l.clone()),
        // PEFT's default for LLaMA (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING).
        None => Targets::Names(vec!["q_proj".into(), "v_proj".into()]),
    };
    let init = match &peft.init_lora_weights {
        serde_json::Value::String(s) if s == "gaussian" => LoraInit::Gaussian,
        _ => LoraInit::Kaiming,
    };
    Ok(AdapterConfig {
        method: if peft.use_dora {
            Method::Dora
        } else {
            Method::Lora
        },
        rule: if peft.use_rslora {
            ScalingRule::Rora
        } else {
            ScalingRule::Lora
        },
        rank: peft.r,
        alpha: peft.lora_alpha.0,
        targets,
        layers: peft.layers_to_transform.as_ref().map(PeftLayers::to_vec),
        dropout: peft.lora_dropout,
        init,
        seed: 0,
        rank_pattern: peft.rank_pattern.0.clone(),
        alpha_pattern: peft
            .alpha_pattern
            .0
            .iter()
            .map(|(k, v)| (k.clone(), v.0))
            .collect(),
    })
}
