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

/// `init_lora_weights` values under which PEFT rewrites the base weights at initialisation
/// (`peft/tuners/lora/layer.py`: `pissa*`, `olora`, `corda`, `loftq`, `lora_ga`).
const BASE_CHANGING_INITS: [&str; 5] = ["pissa", "olora", "corda", "loftq", "lora_ga"];

/// `null`, `"layers"` or `["layers"]`: the layer list of a LLaMA model.
fn layers_pattern_is_llamas(p: &serde_json::Value) -> bool {
    match p {
        serde_json::Value::Null => true,
        serde_json::Value::String(s) => s == "layers",
        serde_json::Value::Array(a) => a.len() == 1 && a[0] == "layers",
        _ => false,
    }
}

/// The first field of `LoraConfig` (PEFT 0.21) that changes what the adapter computes, or which
/// weights it holds, in a way rora does not implement, set to something other than its default;
/// with why it is refused. Fields not listed are informational or training-only (`peft_version`,
/// `loftq_config`, `eva_config`, `runtime_config`, `megatron_core`, ...).
fn unsupported_field(
    other: &serde_json::Map<String, serde_json::Value>,
) -> Option<(&'static str, &'static str)> {
    use serde_json::Value;
    const FIELDS: [(&str, &str); 12] = [
        (
            "exclude_modules",
            "rora targets modules by target_modules only",
        ),
        (
            "trainable_token_indices",
            "the adapter also changes token embeddings",
        ),
        ("use_qalora", "QA-LoRA pools the input in groups before A"),
        ("lora_bias", "the adapter has a bias on lora_B"),
        (
            "layer_replication",
            "the adapter duplicates layers of the base",
        ),
        (
            "target_parameters",
            "the adapter targets parameters, not nn.Linear modules",
        ),
        ("use_bdlora", "block-diagonal LoRA is not implemented"),
        (
            "alora_invocation_tokens",
            "activated LoRA depends on invocation tokens",
        ),
        ("velora_config", "VeLoRA changes the adapter's computation"),
        (
            "monteclora_config",
            "MonteCLoRA changes the adapter's computation",
        ),
        (
            "arrow_config",
            "Arrow routing over several adapters is not implemented",
        ),
        ("kasa_config", "KaSA changes the adapter's computation"),
    ];
    let set = |v: &Value| match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::String(s) => !s.is_empty(),
        Value::Number(_) => true,
    };
    FIELDS
        .iter()
        .find(|(name, _)| other.get(*name).is_some_and(set))
        .map(|(name, why)| (*name, *why))
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
        return Err(format_err(
            path,
            "modules_to_save is not supported (the adapter also trains whole modules, e.g. lm_head)",
        ));
    }
    if let Some(p) = &peft.layers_pattern
        && !layers_pattern_is_llamas(p)
    {
        return Err(format_err(
            path,
            format!("layers_pattern {p} is not supported (a LLaMA model's layers are `layers`)"),
        ));
    }
    if let Some((field, why)) = unsupported_field(&peft.other) {
        return Err(format_err(path, format!("{field} is not supported: {why}")));
    }
    if let serde_json::Value::String(s) = &peft.init_lora_weights
        && BASE_CHANGING_INITS.iter().any(|i| s.starts_with(i))
    {
        return Err(format_err(
            path,
            format!(
                "init_lora_weights {s:?} is not supported: that initialisation changes the base \
                 weights, so the adapter is relative to a model rora does not have; convert it to \
                 plain LoRA with PEFT (save_pretrained(..., path_initial_model_for_weight_conversion=...))"
            ),
        ));
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
        activation: Default::default(),
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
