//! The `merge` stage: a trained adapter folded into its base weights (LoRA `W + sBA`, DoRA
//! `(m/n)(W + sBA)`), saved as an HF dir. The adapter comes from a train stage, or from an adapter
//! stage that loads a trained PEFT adapter; with `keep-sparsity` the merged weights keep the base's
//! zero pattern. Merging DoRA into a quantized (GGUF) base is refused before anything runs.

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
use crate::run::context::JobCx;
use crate::run::error::RunError;
use crate::schema::registry::{def, one, req_prop};
use crate::schema::{Default, Dtype, Kind, KindSpec, Ty};
use crate::source::SourceFile;

pub static SPEC: KindSpec = KindSpec {
    kind: Kind::Merge,
    doc: "Merge a trained adapter into its base weights (W' = W + s B A; DoRA: W' = m/||W + s B A|| (W + s B A)) and save an HF directory.",
    version: 1,
    props: &[req_prop(
        "from",
        Ty::Stage(&[Kind::Train, Kind::Adapter]),
        "The train stage whose adapter is merged, or an adapter stage that loads a trained PEFT adapter (path / hub).",
    )],
    children: &[
        def(
            one(
                "dtype",
                "dtype of the saved merged weights.",
                Ty::Choice(Dtype::NAMES),
            ),
            Default::Str("f32"),
        ),
        one(
            "keep-sparsity",
            "Keep the base's zero pattern (for unstructured-pruned bases): the merged weights are multiplied by the base's nonzero mask, so the merged model stays as sparse as the base. The update that falls on pruned positions is dropped; the stage's summary (rora show-output) reports how much, per module. Off when absent.",
            Ty::Bool,
        ),
        crate::schema::registry::RESOURCES,
    ],
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeParams {
    pub dtype: Dtype,
    /// Mask the merged weights with the base's nonzeros (unstructured-pruned bases stay sparse).
    pub keep_sparsity: bool,
}

pub struct Merge;

impl Stage for Merge {
    fn accelerated(&self) -> bool {
        true
    }

    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn params(&self, b: &BoundStage, _file: &SourceFile) -> Result<StageParams, ParamError> {
        Ok(StageParams::new(
            Kind::Merge,
            MergeParams {
                dtype: b.need_choice("dtype", Dtype::from_name)?,
                // an option without a default: absent means off
                keep_sparsity: b.bool("keep-sparsity").unwrap_or(false),
            },
        ))
    }

    fn wrong_ref(&self, prop: &str) -> Option<(Code, &'static str)> {
        (prop == "from").then_some((
            Code::MergeNeedsTrained,
            "point from= at the train stage that trains the adapter, or at an adapter stage that loads one (path / hub)",
        ))
    }

    fn check_decl(&self, cx: &mut CheckCx, stage: &StageDecl) {
        let p = cx.p;
        let Some(from) = stage.refs.get("from").and_then(|r| p.stage(&r.name)) else {
            return;
        };
        let adapter = if from.kind == Kind::Adapter {
            if !crate::stages::adapter::loads(from) {
                cx.push(
                    Diagnostic::error(
                        Code::MergeNeedsTrained,
                        format!(
                            "merge `{}` takes the adapter stage `{}`, which makes a fresh (untrained) adapter",
                            stage.name, from.name
                        ),
                    )
                    .label(stage.refs["from"].span, "untrained")
                    .label(from.name_span, "a fresh adapter: B = 0")
                    .help("point from= at the train stage that trains this adapter, or load a trained adapter in it with path / hub"),
                );
                return;
            }
            from
        } else {
            let Some(adapter) = from.refs.get("adapter").and_then(|r| p.stage(&r.name)) else {
                return;
            };
            adapter
        };
        let Some(model) = adapter.refs.get("model") else {
            return;
        };
        if let Some(method) = cx.unmergeable.get(&adapter.name).copied() {
            let trained = stage.refs["from"].name.clone();
            cx.push(
                Diagnostic::error(Code::MergeUnmergeable, format!("merge `{}` takes the {method} adapter `{}`, which cannot be merged into the weights", stage.name, adapter.name))
                    .label(stage.name_span, "this merge")
                    .label(cx.span_of(adapter, "method"), format!("method {method}: {}", if method == "prefix" { "learned attention keys and values, not a weight delta" } else { "a bottleneck with a non-linearity" }))
                    .help(format!("evaluate the train stage instead: eval \"e\" model=\"{trained}\" runs the adapter unmerged")),
            );
            return;
        }
        let dora = cx.dora.get(&adapter.name).copied().unwrap_or(false);
        if dora && cx.quantized.get(&model.name).copied().unwrap_or(false) {
            cx.push(
                Diagnostic::error(Code::DoraQuantizedMerge, format!("merge `{}` would merge the DoRA adapter `{}` into the quantized (GGUF) model `{}`", stage.name, adapter.name, model.name))
                    .label(stage.name_span, "this merge")
                    .label(cx.span_of(adapter, "method"), "DoRA here")
                    .help("use a full-precision base (hub or path), LoRA/RoRA, or evaluate the unmerged adapter with eval model=\"<train stage>\""),
            );
        }
    }

    fn run(
        &self,
        cx: &JobCx<'_>,
        out: &Path,
        _progress: &dyn Progress,
    ) -> Result<serde_json::Value, RunError> {
        let trained = cx.input("from")?;
        let model = cx.entry_of(cx.base_model_job(cx.job)?)?;
        run::run(cx.ctx, cx.params::<MergeParams>()?, &model, trained, out)
    }
}
