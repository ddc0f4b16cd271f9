//! The `prune` stage: unstructured (magnitude, Wanda), N:M, or structured (attention heads as
//! whole KV groups, FFN channels) pruning of a model, stored as an HF dir (per-layer dims
//! recorded) that later stages load like any other model. Activation-aware methods read their
//! calibration rows through a planned `tokens` job.

mod run;

use std::path::Path;

use serde::Serialize;

use super::params::Need;
use super::params::{ParamError, StageParams};
use super::stage::Stage;
use crate::check::context::CheckCx;
use crate::diag::{Code, Diagnostic};
use crate::exec::progress::Progress;
use crate::ir::StageDecl;
use crate::ir::bound::BoundStage;
use crate::plan::job::TOKENS_ROLE;
use crate::run::context::JobCx;
use crate::run::error::RunError;
use crate::schema::registry::{child, def, def_prop, one, props, req_prop, required};
use crate::schema::{Args, Default, Kind, KindSpec, MODEL_LIKE, Ty};
use crate::source::SourceFile;

pub static SPEC: KindSpec = KindSpec {
    kind: Kind::Prune,
    doc: "Prune a model: unstructured (magnitude, wanda), semi-structured (n:m) or structured (attention heads, FFN channels).",
    version: 1,
    props: &[req_prop(
        "model",
        Ty::Stage(MODEL_LIKE),
        "The model to prune.",
    )],
    children: &[
        required(one(
            "method",
            "Pruning method.",
            Ty::Choice(PruneMethod::NAMES),
        )),
        one(
            "sparsity",
            "Fraction of weights (or heads / channels) to remove.",
            Ty::fraction(),
        ),
        child(
            "n-m",
            "Keep n weights in every group of m (n:m sparsity).",
            Args::Fixed(&[("n", Ty::int(1, 64)), ("m", Ty::int(2, 64))]),
        ),
        one(
            "target-params",
            "Structured pruning: prune until the model has about this many parameters.",
            Ty::pos_int(),
        ),
        props(
            child(
                "calibration",
                "Calibration rows for activation-aware methods (wanda, heads, ffn).",
                Args::None,
            ),
            &[
                req_prop("data", Ty::Stage(&[Kind::Data]), "A data stage."),
                def_prop(
                    "rows",
                    Ty::int(1, 1_000_000),
                    "Rows to run.",
                    Default::Int(128),
                ),
                def_prop(
                    "max-len",
                    Ty::int(8, 1 << 20),
                    "Tokens per row.",
                    Default::Int(256),
                ),
            ],
        ),
        def(
            one(
                "seed",
                "Seed for calibration row sampling.",
                Ty::nonneg_int(),
            ),
            Default::Int(0),
        ),
        crate::schema::registry::RESOURCES,
    ],
};

crate::choice_enum! {
    pub enum PruneMethod {
        Magnitude = "magnitude",
        Wanda = "wanda",
        NofM = "n:m",
        Heads = "heads",
        Ffn = "ffn",
    }
}

impl PruneMethod {
    /// Removes whole heads or channels (the model's shape changes).
    pub fn is_structured(self) -> bool {
        matches!(self, PruneMethod::Heads | PruneMethod::Ffn)
    }

    /// Scores weights with activations of calibration rows.
    pub fn needs_calibration(self) -> bool {
        matches!(
            self,
            PruneMethod::Wanda | PruneMethod::Heads | PruneMethod::Ffn
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// The data stage's name (its job is a dependency with role `calibration.data`; the tokens
    /// job of it under this prune's model, role `tokens`, is what the runner reads).
    pub data: String,
    pub rows: usize,
    pub max_len: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneParams {
    pub method: PruneMethod,
    pub sparsity: Option<f64>,
    pub n_m: Option<(usize, usize)>,
    pub target_params: Option<u64>,
    pub calibration: Option<Calibration>,
    pub seed: u64,
}

pub struct Prune;

impl Stage for Prune {
    fn accelerated(&self) -> bool {
        true
    }

    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn params(&self, b: &BoundStage, _file: &SourceFile) -> Result<StageParams, ParamError> {
        let n_m = b.first("n-m").and_then(|f| match f.args.as_slice() {
            [n, m] => Some((n.as_i64()?.max(0) as usize, m.as_i64()?.max(0) as usize)),
            _ => None,
        });
        let calibration = match b.first("calibration") {
            Some(_) => Some(Calibration {
                data: b.need_prop_str("calibration", "data")?.to_string(),
                rows: b.need_prop_usize("calibration", "rows")?,
                max_len: b.need_prop_usize("calibration", "max-len")?,
            }),
            None => None,
        };
        Ok(StageParams::new(
            Kind::Prune,
            PruneParams {
                method: b.need_choice("method", PruneMethod::from_name)?,
                sparsity: b.float("sparsity"),
                n_m,
                target_params: b.int("target-params").map(|x| x.max(0) as u64),
                calibration,
                seed: b.need_u64("seed")?,
            },
        ))
    }

    fn tokenizes(&self) -> Option<(&'static str, &'static str)> {
        Some(("calibration.data", "model"))
    }

    fn check(
        &self,
        cx: &mut CheckCx,
        stage: &StageDecl,
        _b: &BoundStage,
        params: &StageParams,
        _single: bool,
    ) {
        let Some(pr) = params.get::<PruneParams>() else {
            return;
        };
        let src = stage
            .refs
            .get("model")
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let keeps_shape = !pr.method.is_structured();
        let cfg = if keeps_shape {
            cx.configs.get(&src).cloned().flatten()
        } else {
            None
        };
        cx.configs.insert(stage.name.clone(), cfg);
        let q = cx.quantized.get(&src).copied().unwrap_or(false);
        cx.quantized.insert(stage.name.clone(), q);
        let amount = match pr.method {
            PruneMethod::NofM => pr.n_m.is_some(),
            _ => pr.sparsity.is_some() || pr.target_params.is_some(),
        };
        if !amount {
            let want = if pr.method == PruneMethod::NofM {
                "n-m 2 4"
            } else {
                "sparsity 0.5 (or target-params N)"
            };
            cx.push(
                Diagnostic::error(
                    Code::PruneNeedsAmount,
                    format!(
                        "prune `{}` ({}) does not say how much to prune",
                        stage.name, pr.method
                    ),
                )
                .label(cx.span_of(stage, "method"), "method here")
                .help(format!("add {want}")),
            );
        }
        if let Some((n, m)) = pr.n_m
            && (n == 0 || n >= m)
        {
            cx.push(
                Diagnostic::error(
                    Code::InvalidNm,
                    format!("n-m {n} {m}: n must be between 1 and m - 1"),
                )
                .label(cx.span_of(stage, "n-m"), "here")
                .help("e.g. n-m 2 4"),
            );
        }
        if pr.method.needs_calibration() && pr.calibration.is_none() {
            cx.push(
                Diagnostic::error(
                    Code::NeedsCalibration,
                    format!(
                        "prune `{}` uses {}, which needs calibration data",
                        stage.name, pr.method
                    ),
                )
                .label(cx.span_of(stage, "method"), "method here")
                .help("add calibration data=\"<data stage>\" rows=128"),
            );
        }
    }

    fn run(
        &self,
        cx: &JobCx<'_>,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<serde_json::Value, RunError> {
        let inputs = run::PruneInputs {
            model: cx.input("model")?,
            calibration: cx.input_opt(TOKENS_ROLE),
        };
        run::run(cx.ctx, cx.params::<PruneParams>()?, inputs, out, progress)
    }
}
