//! The `adapter` stage: adapters on a model, stored in PEFT format (LLM-Adapters' for bottleneck
//! adapters) with the full config and the trainable-parameter report. Either fresh (seeded init,
//! B = 0: LoRA or DoRA, scaled by the rule lora (alpha/r), rora (alpha/sqrt(r)) or fixed; a
//! series / parallel bottleneck; a prefix of virtual tokens), or loaded from an adapter folder
//! (`path`) or hub repo (`hub`, its revision pinned to a commit in the key). Each method takes its
//! own options (`check_method_options`); the method-dependent defaults live in the schema
//! (`def_when`). A loaded adapter's settings
//! come from its `adapter_config.json`: the options that describe a fresh adapter are refused
//! beside `path`/`hub`, and what PEFT writes that rora does not implement is refused naming the
//! field (`adapter::peft_convert`). The checks compare ranks, targets and layer indices with the
//! model's dimensions when they are known offline.

mod run;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

pub use run::config;
pub use source::{AdapterSource, FRESH_ONLY, loads, settings_of};

mod source;

use super::params::Need;
use super::params::{ParamError, StageParams, abs_path};
use super::stage::{HubSource, Stage};
use crate::adapter::SaveOptions;
use crate::adapter::bottleneck::{Activation, Placement};
use crate::adapter::scaling::ScalingRule;
use crate::adapter::spec::Method;
use crate::check::context::{CheckCx, first_line};
use crate::diag::{Code, Diagnostic, suggest};
use crate::exec::progress::Progress;
use crate::hub::RepoKind;
use crate::ir::StageDecl;
use crate::ir::bound::BoundStage;
use crate::model::config::{LlamaConfig, PROJECTIONS, module_path};
use crate::plan::digest::{DigestError, DigestMemo};
use crate::run::context::JobCx;
use crate::run::error::RunError;
use crate::schema::registry::{
    added_later_option, child, def, def_prop, def_when, one, optional_when, prop, props, repeat,
    req_prop, required_unless,
};
use crate::schema::{Args, Default, Kind, KindSpec, MODEL_LIKE, Ty};
use crate::source::SourceFile;
use crate::stages::model::{ModelParams, ModelSource};

pub static SPEC: KindSpec = KindSpec {
    kind: Kind::Adapter,
    doc: "An adapter on a model: fresh LoRA or DoRA, with the scaling rule lora (alpha/r), rora (alpha/sqrt(r), PEFT use_rslora) or fixed, a Series / Parallel bottleneck adapter (LLM-Adapters) or a prefix (prefix tuning); or an adapter loaded from a folder or the hub (PEFT LoRA, rsLoRA, DoRA, rank/alpha patterns, PREFIX_TUNING; LLM-Adapters BOTTLENECK), to evaluate, merge (LoRA, DoRA) or train further.",
    version: 1,
    props: &[req_prop(
        "model",
        Ty::Stage(MODEL_LIKE),
        "The model to adapt.",
    )],
    children: &[
        one(
            "path",
            "Load a PEFT adapter folder (adapter_config.json, adapter_model.safetensors) instead of making a fresh adapter; its settings come from adapter_config.json.",
            Ty::Path,
        ),
        props(
            one(
                "hub",
                "Load a PEFT adapter from the Hugging Face hub, e.g. \"org/my-lora\", instead of making a fresh adapter.",
                Ty::Str,
            ),
            &[def_prop(
                "revision",
                Ty::Str,
                "Branch, tag or commit; the commit it resolves to is part of the key.",
                Default::Str("main"),
            )],
        ),
        def(
            one(
                "method",
                "lora; dora (weight-decomposed: learned magnitude per output row); series (a bottleneck adapter after down_proj, or before gate_proj / up_proj) or parallel (a bottleneck beside each target), LLM-Adapters' adapters, which take `bottleneck`, not a rank or scaling rule; prefix (prefix tuning: `virtual-tokens` learned keys and values in every layer). Series, parallel and prefix are evaluated unmerged. In a sweep over methods each point takes the options its method knows.",
                Ty::Choice(AdapterMethod::NAMES),
            ),
            Default::Str("lora"),
        ),
        props(
            def(
                one(
                    "scaling",
                    "Scale of B A: lora = alpha/r, rora = alpha/sqrt(r) (PEFT use_rslora), fixed = value.",
                    Ty::Choice(ScalingChoice::NAMES),
                ),
                Default::Str("lora"),
            ),
            &[prop(
                "value",
                Ty::pos_float(),
                "The scale, for scaling \"fixed\".",
            )],
        ),
        optional_when(
            required_unless(
                one(
                    "rank",
                    "Rank r of A [r, in] and B [out, r].",
                    Ty::int(1, 65536),
                ),
                &["path", "hub"],
            ),
            &[("method", RANKLESS_METHODS)],
        ),
        added_later_option(def(
            one(
                "virtual-tokens",
                "Virtual tokens of a prefix (method prefix): learned keys and values before every layer's attention (PEFT num_virtual_tokens; LLM-Adapters' finetune.py default 30).",
                Ty::int(1, 4096),
            ),
            Default::Int(30),
        )),
        added_later_option(props(
            def(
                one(
                    "bottleneck",
                    "Bottleneck size b of a series or parallel adapter: down [b, d_in], up [d_out, b] (LLM-Adapters' bottleneck_size).",
                    Ty::int(1, 65536),
                ),
                Default::Int(256),
            ),
            &[
                def_prop(
                    "non-linearity",
                    Ty::Choice(NonLinearity::NAMES),
                    "Between down and up (LLM-Adapters' non_linearity).",
                    Default::Str("tanh"),
                ),
                def_prop(
                    "scale",
                    Ty::pos_float(),
                    "Multiplies the adapter's output (LLM-Adapters' scaling).",
                    Default::Float(1.0),
                ),
                def_prop(
                    "learn-scale",
                    Ty::Bool,
                    "Train the scale, starting at scale= (LLM-Adapters' scaling=\"learned\").",
                    Default::Bool(false),
                ),
            ],
        )),
        def(
            one(
                "alpha",
                "alpha (PEFT lora_alpha). Fixed across ranks unless alpha-per-rank is given.",
                Ty::pos_float(),
            ),
            Default::Float(8.0),
        ),
        one(
            "alpha-per-rank",
            "Alpha policy proportional to rank: alpha = k * r (replaces alpha).",
            Ty::pos_float(),
        ),
        def_when(
            def(
                child(
                    "targets",
                    "Projection names (q_proj k_proj v_proj o_proj gate_proj up_proj down_proj) or all-linear; series adapters sit on gate_proj, up_proj, down_proj.",
                    Args::Many {
                        ty: Ty::Str,
                        min: 1,
                    },
                ),
                Default::Strs(&["q_proj", "v_proj"]),
            ),
            // LLM-Adapters' commonsense runs (its issue #45 and math_running_commands)
            &[
                ("method", &["series"], Default::Strs(&["down_proj"])),
                (
                    "method",
                    &["parallel"],
                    Default::Strs(&["up_proj", "down_proj"]),
                ),
            ],
        ),
        one(
            "target-regex",
            "Regex over module paths (model.layers.N.self_attn.q_proj); replaces targets.",
            Ty::Str,
        ),
        child(
            "layers",
            "Only these layer indices.",
            Args::Many {
                ty: Ty::nonneg_int(),
                min: 1,
            },
        ),
        child(
            "layer-range",
            "Only layers first..=last.",
            Args::Fixed(&[("first", Ty::nonneg_int()), ("last", Ty::nonneg_int())]),
        ),
        def(
            one("dropout", "Dropout on the adapter input.", Ty::fraction()),
            Default::Float(0.0),
        ),
        def_when(
            def(
                one(
                    "init",
                    "peft: A kaiming-uniform, B = 0; gaussian: A ~ N(0, 1/r), B = 0. Bottleneck adapters: bert: down, up ~ N(0, 0.02^2) (LLM-Adapters' default; not the identity at step 0); mam: down kaiming-uniform, up = 0.",
                    Ty::Choice(InitChoice::NAMES),
                ),
                Default::Str("peft"),
            ),
            &[("method", BOTTLENECK_METHODS, Default::Str("bert"))],
        ),
        repeat(props(
            one(
                "module",
                "Per-module override: a regex over module paths with its own rank / alpha (PEFT rank_pattern / alpha_pattern).",
                Ty::Str,
            ),
            &[
                prop("rank", Ty::int(1, 65536), "Rank for matching modules."),
                prop("alpha", Ty::pos_float(), "Alpha for matching modules."),
            ],
        )),
        def(
            one("seed", "Initialisation seed of A.", Ty::nonneg_int()),
            Default::Int(0),
        ),
        crate::schema::registry::RESOURCES,
    ],
};

crate::choice_enum! {
    pub enum AdapterMethod {
        Lora = "lora",
        Dora = "dora",
        Series = "series",
        Parallel = "parallel",
        Prefix = "prefix",
    }
}

/// The methods that take a bottleneck size instead of a rank.
pub const BOTTLENECK_METHODS: &[&str] = &["series", "parallel"];
/// The methods that take no rank.
pub const RANKLESS_METHODS: &[&str] = &["series", "parallel", "prefix"];

impl AdapterMethod {
    /// The adapter library's method.
    pub fn library(self) -> Method {
        match self {
            AdapterMethod::Lora => Method::Lora,
            AdapterMethod::Dora => Method::Dora,
            AdapterMethod::Series => Method::Series,
            AdapterMethod::Parallel => Method::Parallel,
            AdapterMethod::Prefix => Method::Prefix,
        }
    }

    pub fn of(m: Method) -> Self {
        match m {
            Method::Lora => AdapterMethod::Lora,
            Method::Dora => AdapterMethod::Dora,
            Method::Series => AdapterMethod::Series,
            Method::Parallel => AdapterMethod::Parallel,
            Method::Prefix => AdapterMethod::Prefix,
        }
    }

    pub fn is_bottleneck(self) -> bool {
        self.library().is_bottleneck()
    }
}

crate::choice_enum! {
    /// The non-linearity of a bottleneck adapter.
    pub enum NonLinearity {
        Tanh = "tanh",
        Relu = "relu",
        Silu = "silu",
        Gelu = "gelu",
    }
}

impl NonLinearity {
    pub fn library(self) -> Activation {
        match self {
            NonLinearity::Tanh => Activation::Tanh,
            NonLinearity::Relu => Activation::Relu,
            NonLinearity::Silu => Activation::Silu,
            NonLinearity::Gelu => Activation::Gelu,
        }
    }
}

crate::choice_enum! {
    /// The `scaling` option's rule names (`fixed` takes its scale from `value=`).
    pub enum ScalingChoice {
        Lora = "lora",
        Rora = "rora",
        Fixed = "fixed",
    }
}

crate::choice_enum! {
    /// How `A` is initialised: PEFT's kaiming-uniform, or gaussian N(0, 1/r); a bottleneck's
    /// matrices: bert N(0, 0.02^2), or mam (kaiming-uniform down, zero up).
    pub enum InitChoice {
        Peft = "peft",
        Gaussian = "gaussian",
        Bert = "bert",
        Mam = "mam",
    }
}

/// How alpha was chosen: a fixed value, or `k * rank`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlphaPolicy {
    Fixed(f64),
    PerRank(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Targets {
    Names(Vec<String>),
    AllLinear,
    Regex(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModulePattern {
    pub pattern: String,
    pub rank: Option<usize>,
    pub alpha: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterParams {
    pub source: AdapterSource,
    /// What the adapter is: the options of a fresh adapter, or a loaded adapter's
    /// `adapter_config.json` when it can be read before the run (a local folder; `None` for a hub
    /// adapter and for a folder whose config is refused, which the checker reports).
    pub settings: Option<AdapterSettings>,
}

impl AdapterParams {
    pub fn settings(&self) -> Option<&AdapterSettings> {
        self.settings.as_ref()
    }
}

/// The settings of one adapter (PEFT's `LoraConfig` or LLM-Adapters' `BottleneckConfig` in
/// rora's words). A bottleneck adapter's `rank` is its bottleneck size and its `scaling` a fixed
/// or learned number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterSettings {
    pub method: AdapterMethod,
    pub scaling: ScalingRule,
    pub rank: usize,
    /// A bottleneck adapter's non-linearity.
    pub activation: Activation,
    pub alpha_policy: AlphaPolicy,
    /// The effective alpha (`k * rank` under the per-rank policy).
    pub alpha: f64,
    pub targets: Targets,
    /// Layer indices; `None`: every layer.
    pub layers: Option<Vec<usize>>,
    pub dropout: f64,
    pub init: InitChoice,
    pub modules: Vec<ModulePattern>,
    pub seed: u64,
}

impl AdapterSettings {
    /// The scale `s` of `W x + s B A x` for the default rank and alpha.
    pub fn scale(&self) -> f64 {
        self.scaling.scale(self.alpha, self.rank)
    }
}

pub struct Adapter;

impl Stage for Adapter {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn params(&self, b: &BoundStage, file: &SourceFile) -> Result<StageParams, ParamError> {
        let source = if let Some(id) = b.str("hub") {
            AdapterSource::Hub {
                id: id.into(),
                revision: b.need_prop_str("hub", "revision")?.into(),
            }
        } else if let Some(p) = b.str("path") {
            AdapterSource::Path(abs_path(file, p))
        } else {
            AdapterSource::Fresh
        };
        let settings = match &source {
            AdapterSource::Fresh => Some(fresh_settings(b)?),
            AdapterSource::Path(dir) => source::read_settings(dir),
            AdapterSource::Hub { .. } => None,
        };
        Ok(StageParams::new(
            Kind::Adapter,
            AdapterParams { source, settings },
        ))
    }

    fn conflicts(&self) -> &'static [&'static [&'static str]] {
        &[
            &["alpha", "alpha-per-rank"],
            &["targets", "target-regex"],
            &["layers", "layer-range"],
            &["path", "hub"],
        ]
    }

    fn check_decl(&self, cx: &mut CheckCx, stage: &StageDecl) {
        source::check_loaded_decl(cx, stage);
    }

    fn check(
        &self,
        cx: &mut CheckCx,
        stage: &StageDecl,
        b: &BoundStage,
        params: &StageParams,
        _single: bool,
    ) {
        let Some(a) = params.get::<AdapterParams>() else {
            return;
        };
        let model = stage
            .refs
            .get("model")
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let cfg = cx.configs.get(&model).cloned().flatten();
        match (&a.source, &a.settings) {
            (AdapterSource::Fresh, Some(s)) => check_adapter(cx, stage, b, s, cfg.as_ref()),
            (AdapterSource::Path(dir), _) => {
                let written = b.str("path").unwrap_or_default().to_string();
                source::check_folder(cx, stage, &written, dir, cfg.as_ref());
            }
            _ => {}
        }
        let dora = a
            .settings()
            .is_some_and(|s| s.method == AdapterMethod::Dora);
        let d = cx.dora.entry(stage.name.clone()).or_insert(false);
        *d |= dora;
        if let Some(s) = a.settings().filter(|s| !s.method.library().mergeable()) {
            cx.unmergeable
                .insert(stage.name.clone(), s.method.library().name());
        }
    }

    fn hub_source<'p>(&self, params: &'p mut StageParams) -> Option<HubSource<'p>> {
        match &mut params.get_mut::<AdapterParams>()?.source {
            AdapterSource::Hub { id, revision } => Some(HubSource {
                kind: RepoKind::Model,
                id,
                revision,
            }),
            _ => None,
        }
    }

    /// A local adapter folder enters the key by content (its config and weights).
    fn key_inputs(
        &self,
        _b: &BoundStage,
        params: &StageParams,
        memo: &mut DigestMemo,
    ) -> Result<BTreeMap<String, String>, DigestError> {
        let mut out = BTreeMap::new();
        if let Some(AdapterSource::Path(dir)) = params.get::<AdapterParams>().map(|p| &p.source) {
            let keep = |n: &str| {
                n == crate::adapter::peft_io::CONFIG_FILE
                    || n.ends_with(".safetensors")
                    || n == crate::adapter::bottleneck_io::BIN_FILE
            };
            out.insert("path".into(), memo.dir(dir, keep)?);
        }
        Ok(out)
    }

    fn run(
        &self,
        cx: &JobCx<'_>,
        out: &Path,
        _progress: &dyn Progress,
    ) -> Result<serde_json::Value, RunError> {
        run::run(
            cx.ctx,
            cx.params::<AdapterParams>()?,
            cx.input("model")?,
            out,
            &save_options(cx)?,
        )
    }
}

/// How an adapter made on this job's base model is written: `base_model_name_or_path` and
/// `revision` name the hub model and the commit the key pinned; a base from a local folder, a
/// GGUF file, a random init or a prune stage has no name outside this cache, so both stay null
/// (a path would put something outside the key into the output).
pub fn save_options(cx: &JobCx<'_>) -> Result<SaveOptions, RunError> {
    let base = cx.base_model_job(cx.job)?;
    let mut opts = SaveOptions::default();
    if let Some(ModelParams {
        source: ModelSource::Hub { id, revision },
        ..
    }) = base.params.get::<ModelParams>()
    {
        opts.base_model_name_or_path = Some(id.clone());
        opts.revision = Some(revision.clone());
    }
    Ok(opts)
}

fn fresh_settings(b: &BoundStage) -> Result<AdapterSettings, ParamError> {
    let method = b.need_choice("method", AdapterMethod::from_name)?;
    let (rank, alpha_policy, alpha, scaling, activation) = if method == AdapterMethod::Prefix {
        // the number of virtual tokens in the rank field (`adapter::prefix_io::prefix_config`)
        let n = b.need_usize("virtual-tokens")?.max(1);
        let rule = ScalingRule::Fixed(1.0);
        (n, AlphaPolicy::Fixed(1.0), 1.0, rule, Activation::default())
    } else if method.is_bottleneck() {
        // the checker reports a rank or scaling rule written beside a bottleneck method
        let size = b.need_usize("bottleneck")?.max(1);
        let prop = |p: &str| b.prop("bottleneck", p);
        let scale = prop("scale").and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        let rule = if prop("learn-scale").and_then(|v| v.as_bool()) == Some(true) {
            ScalingRule::Learned(scale)
        } else {
            ScalingRule::Fixed(scale)
        };
        let activation = prop("non-linearity")
            .and_then(|v| v.as_str())
            .and_then(NonLinearity::from_name)
            .unwrap_or(NonLinearity::Tanh)
            .library();
        (size, AlphaPolicy::Fixed(scale), scale, rule, activation)
    } else {
        let rank = b.need_usize("rank")?.max(1);
        let alpha_policy = match b.float("alpha-per-rank") {
            Some(k) => AlphaPolicy::PerRank(k),
            None => AlphaPolicy::Fixed(b.need_float("alpha")?),
        };
        let alpha = match alpha_policy {
            AlphaPolicy::Fixed(a) => a,
            AlphaPolicy::PerRank(k) => k * rank as f64,
        };
        let scaling = match b.need_choice("scaling", ScalingChoice::from_name)? {
            ScalingChoice::Lora => ScalingRule::Lora,
            ScalingChoice::Rora => ScalingRule::Rora,
            // without value= the checker reports FixedScaleNeedsValue; the params still build
            ScalingChoice::Fixed => ScalingRule::Fixed(
                b.prop("scaling", "value")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(f64::NAN),
            ),
        };
        (rank, alpha_policy, alpha, scaling, Activation::default())
    };
    let names = b.strs("targets");
    let targets = if let Some(r) = b.str("target-regex") {
        Targets::Regex(r.into())
    } else if names.iter().any(|n| n == "all-linear") {
        Targets::AllLinear
    } else {
        Targets::Names(names)
    };
    let layers = if b.has("layers") {
        Some(
            b.ints("layers")
                .into_iter()
                .map(|x| x.max(0) as usize)
                .collect(),
        )
    } else {
        match b.ints("layer-range").as_slice() {
            [a, z] => Some((*a.max(&0) as usize..=(*z).max(0) as usize).collect()),
            _ => None,
        }
    };
    let modules = b
        .all("module")
        .iter()
        .map(|f| ModulePattern {
            pattern: f
                .args
                .first()
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            rank: f
                .props
                .get("rank")
                .and_then(|v| v.as_i64())
                .map(|x| x.max(1) as usize),
            alpha: f.props.get("alpha").and_then(|v| v.as_f64()),
        })
        .collect();
    Ok(AdapterSettings {
        method,
        scaling,
        rank,
        activation,
        alpha_policy,
        alpha,
        targets,
        layers,
        dropout: b.need_float("dropout")?,
        init: b.need_choice("init", InitChoice::from_name)?,
        modules,
        seed: b.need_u64("seed")?,
    })
}

/// The options written beside the method are ones it takes (reports the first that is not).
fn check_method_options(cx: &mut CheckCx, stage: &StageDecl, b: &BoundStage, a: &AdapterSettings) {
    let method = a.method.name();
    let (foreign, why): (&[&str], &str) = if a.method == AdapterMethod::Prefix {
        (
            &[
                "rank",
                "alpha",
                "alpha-per-rank",
                "scaling",
                "module",
                "bottleneck",
                "targets",
                "target-regex",
                "layers",
                "layer-range",
                "dropout",
                "init",
            ],
            "takes virtual-tokens only (its keys and values sit in every layer, N(0, 1) at the start as PEFT's)",
        )
    } else if a.method.is_bottleneck() {
        (
            &[
                "rank",
                "alpha",
                "alpha-per-rank",
                "scaling",
                "module",
                "virtual-tokens",
            ],
            "takes a bottleneck size and a scale, not a rank, alpha or scaling rule",
        )
    } else {
        (
            &["bottleneck", "virtual-tokens"],
            "takes a rank, not a bottleneck size or virtual tokens",
        )
    };
    let init_ok = a.method == AdapterMethod::Prefix
        || b.str("init")
            .and_then(InitChoice::from_name)
            .is_none_or(|i| {
                matches!(i, InitChoice::Bert | InitChoice::Mam) == a.method.is_bottleneck()
            });
    // in a sweep over methods each point takes the options its method knows
    let swept = stage
        .fields
        .get("method")
        .and_then(|f| f.first())
        .and_then(|f| f.args.first())
        .is_some_and(|a| matches!(a, crate::ir::Arg::Var { .. }));
    let bad = foreign
        .iter()
        .filter(|_| !swept)
        .find(|f| stage.fields.contains_key(**f))
        .copied()
        .or((!init_ok).then_some("init"));
    let Some(f) = bad else { return };
    let help = if a.method == AdapterMethod::Prefix {
        "write `virtual-tokens 30` (LLM-Adapters' default) and nothing else"
    } else if a.method.is_bottleneck() {
        "write `bottleneck 256 non-linearity=\"tanh\" scale=1.0` and init bert or mam (LLM-Adapters' settings are the defaults)"
    } else {
        "write `rank 8` (and alpha, scaling) and init peft or gaussian; bottleneck is for method series / parallel"
    };
    let msg = if f == "init" {
        format!(
            "init {:?} is not an init of a {method} adapter",
            b.str("init").unwrap_or_default()
        )
    } else {
        format!("a {method} adapter {why}: `{f}` does not apply")
    };
    cx.push(
        Diagnostic::error(Code::OptionNotForMethod, msg)
            .label(cx.span_of(stage, f), "not for this method")
            .label(cx.span_of(stage, "method"), format!("method {method}"))
            .help(help),
    );
}

fn check_adapter(
    cx: &mut CheckCx,
    stage: &StageDecl,
    b: &BoundStage,
    a: &AdapterSettings,
    cfg: Option<&LlamaConfig>,
) {
    check_method_options(cx, stage, b, a);
    if a.method == AdapterMethod::Prefix {
        if let Some(c) = cfg
            && c.layers
                .iter()
                .any(|l| l.n_kv_heads != c.layers[0].n_kv_heads)
        {
            cx.push(
                Diagnostic::error(
                    Code::OptionNotForMethod,
                    "prefix tuning needs the same KV heads in every layer; this model's layers differ (pruned heads)",
                )
                .label(cx.span_of(stage, "method"), "method prefix")
                .help("use lora, dora or a bottleneck adapter on a head-pruned model"),
            );
        }
        return;
    }
    if b.str("scaling") == Some("fixed") && b.prop("scaling", "value").is_none() {
        cx.push(
            Diagnostic::error(Code::FixedScaleNeedsValue, "scaling \"fixed\" needs value=")
                .label(cx.span_of(stage, "scaling"), "no value= here")
                .help("scaling \"fixed\" value=2.0"),
        );
    }
    let n_layers = cfg.map_or(128, |c| c.n_layers());
    let layers: Vec<usize> = match &a.layers {
        Some(l) => l.clone(),
        None => (0..n_layers).collect(),
    };
    if let (Some(c), Some(l)) = (cfg, &a.layers)
        && let Some(bad) = l.iter().find(|i| **i >= c.n_layers())
    {
        let f = if stage.fields.contains_key("layers") {
            "layers"
        } else {
            "layer-range"
        };
        cx.push(
            Diagnostic::error(
                Code::LayerOutOfRange,
                format!(
                    "layer {bad} does not exist: the model has {} layers (0..={})",
                    c.n_layers(),
                    c.n_layers() - 1
                ),
            )
            .label(cx.span_of(stage, f), "here")
            .help("use indices below the layer count"),
        );
    }
    if let Some(r) = b.ints("layer-range").get(..2)
        && r[0] > r[1]
    {
        cx.push(
            Diagnostic::error(
                Code::OutOfRange,
                format!("layer-range {} {}: first is after last", r[0], r[1]),
            )
            .label(cx.span_of(stage, "layer-range"), "here")
            .help("write layer-range <first> <last> with first <= last"),
        );
    }
    let mut patterns = vec![];
    for (i, m) in a.modules.iter().enumerate() {
        match regex::Regex::new(&m.pattern) {
            Ok(re) => patterns.push((re, m.rank)),
            Err(e) => {
                let span = stage
                    .fields
                    .get("module")
                    .and_then(|v| v.get(i))
                    .and_then(|f| f.args.first())
                    .map_or(stage.name_span, |x| x.span());
                cx.push(Diagnostic::error(Code::InvalidRegex, format!("module pattern does not compile: {}", first_line(&e.to_string()))).label(span, "this regex").help("module patterns are Rust regexes over paths like model.layers.0.self_attn.q_proj"));
            }
        }
    }
    let targeted: Vec<(usize, &str)> = match &a.targets {
        Targets::AllLinear => layers
            .iter()
            .flat_map(|l| PROJECTIONS.iter().map(move |p| (*l, *p)))
            .collect(),
        Targets::Names(names) => {
            let mut sel = vec![];
            for (i, n) in names.iter().enumerate() {
                let projs: Vec<&str> = PROJECTIONS
                    .iter()
                    .copied()
                    .filter(|p| {
                        let path = module_path(0, p);
                        *p == n.as_str()
                            || path
                                .strip_suffix(n.as_str())
                                .is_some_and(|head| head.ends_with('.'))
                    })
                    .collect();
                if projs.is_empty() {
                    let help = match suggest(n, PROJECTIONS.iter().copied().chain(["all-linear"])) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => {
                            format!("targets are {} or all-linear", PROJECTIONS.join(", "))
                        }
                    };
                    cx.push(
                        Diagnostic::error(
                            Code::TargetsMatchNothing,
                            format!("target `{n}` matches no module of a LLaMA model"),
                        )
                        .label(cx.arg_span(stage, "targets", i), "no such module")
                        .help(help),
                    );
                }
                sel.extend(
                    layers
                        .iter()
                        .flat_map(|l| projs.iter().map(move |p| (*l, *p))),
                );
            }
            sel
        }
        Targets::Regex(r) => match regex::Regex::new(r) {
            Ok(re) => {
                let sel: Vec<(usize, &str)> = layers
                    .iter()
                    .flat_map(|l| PROJECTIONS.iter().map(move |p| (*l, *p)))
                    .filter(|(l, p)| re.is_match(&module_path(*l, p)))
                    .collect();
                if sel.is_empty() {
                    cx.push(Diagnostic::error(Code::TargetsMatchNothing, format!("target-regex `{r}` matches no module")).label(cx.arg_span(stage, "target-regex", 0), "matches nothing").help("module paths look like model.layers.0.self_attn.q_proj / model.layers.0.mlp.up_proj"));
                }
                sel
            }
            Err(e) => {
                cx.push(
                    Diagnostic::error(
                        Code::InvalidRegex,
                        format!(
                            "target-regex does not compile: {}",
                            first_line(&e.to_string())
                        ),
                    )
                    .label(cx.arg_span(stage, "target-regex", 0), "this regex")
                    .help("target-regex is a Rust regex over module paths"),
                );
                vec![]
            }
        },
    };
    if a.method == AdapterMethod::Series
        && let Some((_, p)) = targeted
            .iter()
            .find(|(_, p)| Placement::of(Method::Series, p).is_none())
    {
        let f = if stage.fields.contains_key("target-regex") {
            "target-regex"
        } else {
            "targets"
        };
        cx.push(
            Diagnostic::error(
                Code::OptionNotForMethod,
                format!("a series adapter has no place on {p}: it sits after down_proj or before gate_proj / up_proj"),
            )
            .label(cx.span_of(stage, f), "targets it")
            .help("target gate_proj, up_proj or down_proj (LLM-Adapters' commonsense runs use down_proj), or use method \"parallel\""),
        );
        return;
    }
    let Some(cfg) = cfg else { return };
    if a.method.is_bottleneck() {
        return; // a bottleneck may be wider than its module
    }
    for (l, p) in targeted {
        let Some((out, inp)) = cfg.proj_shape(l, p) else {
            continue;
        };
        let r = if patterns.is_empty() {
            a.rank
        } else {
            let path = module_path(l, p);
            patterns
                .iter()
                .find(|(re, _)| re.is_match(&path))
                .and_then(|(_, r)| *r)
                .unwrap_or(a.rank)
        };
        if r > out.min(inp) {
            let path = module_path(l, p);
            cx.push(
                Diagnostic::error(Code::RankTooLarge, format!("rank {r} is larger than {path} allows: it is [{out}, {inp}], so rank <= {}", out.min(inp)))
                    .label(cx.span_of(stage, "rank"), "this rank")
                    .help(format!("use a rank <= {} or target other modules", out.min(inp))),
            );
            return;
        }
    }
}
