//! Where an `adapter` stage's adapter comes from: fresh from its options, or a PEFT adapter loaded
//! from a folder (`path`) or a hub repo (`hub`). What the checker knows of a loaded adapter before
//! the run: its `adapter_config.json` (refusals name the field) and, when the model's dimensions
//! are known offline, whether its modules and ranks fit the model.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{
    AdapterMethod, AdapterSettings, AlphaPolicy, InitChoice, ModulePattern, Targets as IrTargets,
};
use crate::adapter::{AdapterConfig, LoraInit, Targets, read_adapter_config};
use crate::check::context::{CheckCx, first_line};
use crate::diag::{Code, Diagnostic};
use crate::ir::StageDecl;
use crate::model::config::{LlamaConfig, PROJECTIONS, module_path};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterSource {
    /// Fresh adapters from the stage's options (seeded A, B = 0).
    Fresh,
    /// A PEFT adapter folder.
    Path(PathBuf),
    /// A PEFT adapter repo on the hub, at a revision (the pinned commit once planned).
    Hub { id: String, revision: String },
}

impl AdapterSource {
    pub fn is_loaded(&self) -> bool {
        !matches!(self, AdapterSource::Fresh)
    }
}

/// The options that describe a fresh adapter: a loaded adapter takes all of them from its
/// `adapter_config.json`, so writing one beside `path` / `hub` is an error.
pub const FRESH_ONLY: [&str; 13] = [
    "method",
    "scaling",
    "rank",
    "alpha",
    "alpha-per-rank",
    "targets",
    "target-regex",
    "layers",
    "layer-range",
    "dropout",
    "init",
    "module",
    "seed",
];

/// Whether an adapter stage, as written, loads a PEFT adapter (`path` or `hub`).
pub fn loads(stage: &StageDecl) -> bool {
    ["path", "hub"]
        .iter()
        .any(|s| stage.fields.contains_key(*s))
}

/// A loaded adapter's settings in the stage's words.
pub fn settings_of(c: &AdapterConfig) -> AdapterSettings {
    let mut modules: Vec<ModulePattern> = Vec::new();
    for (p, r) in &c.rank_pattern {
        modules.push(ModulePattern {
            pattern: p.clone(),
            rank: Some(*r),
            alpha: None,
        });
    }
    for (p, a) in &c.alpha_pattern {
        match modules.iter_mut().find(|m| m.pattern == *p) {
            Some(m) => m.alpha = Some(*a),
            None => modules.push(ModulePattern {
                pattern: p.clone(),
                rank: None,
                alpha: Some(*a),
            }),
        }
    }
    AdapterSettings {
        method: AdapterMethod::of(c.method),
        scaling: c.rule,
        rank: c.rank,
        activation: c.activation,
        alpha_policy: AlphaPolicy::Fixed(c.alpha),
        alpha: c.alpha,
        targets: match &c.targets {
            Targets::Names(n) => IrTargets::Names(n.clone()),
            Targets::AllLinear => IrTargets::AllLinear,
            Targets::Regex(r) => IrTargets::Regex(r.clone()),
        },
        layers: c.layers.clone(),
        dropout: c.dropout,
        init: match c.init {
            LoraInit::Kaiming => InitChoice::Peft,
            LoraInit::Gaussian => InitChoice::Gaussian,
            LoraInit::Bert => InitChoice::Bert,
            LoraInit::Mam => InitChoice::Mam,
        },
        modules,
        seed: c.seed,
    }
}

/// The settings of the adapter folder `dir`, when its config is readable and accepted.
pub fn read_settings(dir: &Path) -> Option<AdapterSettings> {
    read_adapter_config(dir).ok().map(|c| settings_of(&c))
}

/// `check_decl` of a loaded adapter: no fresh-adapter option beside `path` / `hub`.
pub fn check_loaded_decl(cx: &mut CheckCx, stage: &StageDecl) {
    let Some(src) = ["path", "hub"]
        .into_iter()
        .find(|s| stage.fields.contains_key(*s))
    else {
        return;
    };
    for opt in FRESH_ONLY.iter().filter(|o| stage.fields.contains_key(**o)) {
        cx.push(
            Diagnostic::error(
                Code::LoadedAdapterOption,
                format!(
                    "adapter `{}` loads a PEFT adapter, which brings its own `{opt}`",
                    stage.name
                ),
            )
            .label(cx.span_of(stage, opt), "not for a loaded adapter")
            .label(cx.span_of(stage, src), "loaded here")
            .help(format!(
                "remove `{opt}`: a loaded adapter's settings come from its adapter_config.json (rora show-output prints them)"
            )),
        );
    }
}

/// `check` of a local adapter folder: its config is accepted, and its modules and ranks fit the
/// model when the model's dimensions are known offline. Messages name the folder as written.
pub fn check_folder(
    cx: &mut CheckCx,
    stage: &StageDecl,
    written: &str,
    dir: &Path,
    cfg: Option<&LlamaConfig>,
) {
    let span = cx.arg_span(stage, "path", 0);
    let as_written = |e: &dyn std::fmt::Display| {
        first_line(&e.to_string()).replace(&dir.display().to_string(), written)
    };
    let config = match read_adapter_config(dir) {
        Ok(c) => c,
        Err(e) => {
            cx.push(
                Diagnostic::error(Code::BadAdapterFolder, as_written(&e))
                    .label(span, "this adapter")
                    .help("rora loads PEFT LoRA adapters: LoRA, rsLoRA, DoRA, rank_pattern / alpha_pattern, target_modules as a list or a regex"),
            );
            return;
        }
    };
    let Some(model) = cfg else { return };
    let shapes: Vec<(String, (usize, usize))> = (0..model.n_layers())
        .flat_map(|l| {
            PROJECTIONS
                .iter()
                .filter_map(move |p| model.proj_shape(l, p).map(|s| (module_path(l, p), s)))
        })
        .collect();
    if let Err(e) = crate::adapter::plan(&shapes, &config) {
        cx.push(
            Diagnostic::error(
                Code::BadAdapterFolder,
                format!("{written}: {}", as_written(&e)),
            )
            .label(span, "does not fit this model")
            .help("load an adapter trained on this model (same layer count and dimensions)"),
        );
    }
}
