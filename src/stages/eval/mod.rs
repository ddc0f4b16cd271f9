//! The `eval` stage: commonsense tasks under one protocol (llm-adapters generation, or lm-eval
//! style log-likelihood), on a base, pruned or merged model or on a train stage's unmerged
//! adapter. Its key covers the task files it reads (by content).

mod run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use run::EvalModel;

use super::params::{Need, count};
use super::params::{ParamError, StageParams, abs_path};
use super::stage::Stage;
use crate::eval::Protocol;
use crate::exec::progress::Progress;
use crate::ir::bound::BoundStage;
use crate::plan::digest::{DigestError, DigestMemo};
use crate::run::context::JobCx;
use crate::run::error::RunError;
use crate::schema::registry::{child, def, one, req_prop, required, unkeyed};
use crate::schema::{Args, Default, Kind, KindSpec, TASKS, Ty};
use crate::source::SourceFile;

pub static SPEC: KindSpec = KindSpec {
    kind: Kind::Eval,
    doc: "Evaluate a model (base, pruned, merged, or a train stage's unmerged adapter) on commonsense tasks.",
    version: 1,
    props: &[req_prop(
        "model",
        Ty::Stage(&[Kind::Model, Kind::Prune, Kind::Merge, Kind::Train]),
        "What to evaluate.",
    )],
    children: &[
        required(child(
            "tasks",
            "Tasks to evaluate.",
            Args::Many {
                ty: Ty::Choice(TASKS),
                min: 1,
            },
        )),
        def(
            one(
                "protocol",
                "llm-adapters: generation + first answer-label match; loglik: lm-eval multiple choice (acc, acc_norm).",
                Ty::Choice(Protocol::NAMES),
            ),
            Default::Str("llm-adapters"),
        ),
        one(
            "limit",
            "At most this many rows per task: a seeded random subset, kept in file order.",
            Ty::pos_int(),
        ),
        unkeyed(def(
            one(
                "batch-size",
                "Rows per batch (results do not depend on it).",
                Ty::int(1, 4096),
            ),
            Default::Int(8),
        )),
        one(
            "dir",
            "Directory with <task>.eval.jsonl[.gz] files; default: the subsets shipped with rora (datasets/commonsense).",
            Ty::Path,
        ),
        def(
            one(
                "split",
                "Which file of each task: <task>.<split>.jsonl.",
                Ty::Choice(Split::NAMES),
            ),
            Default::Str("eval"),
        ),
        def(
            one(
                "max-new-tokens",
                "Generation length (llm-adapters protocol).",
                Ty::int(1, 4096),
            ),
            Default::Int(32),
        ),
        def(
            one("beams", "Beam width (1 = greedy).", Ty::int(1, 16)),
            Default::Int(1),
        ),
        crate::schema::registry::RESOURCES,
    ],
};

crate::choice_enum! {
    /// Which file of each task: `<task>.<split>.jsonl`.
    pub enum Split {
        Eval = "eval",
        Train = "train",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalParams {
    pub tasks: Vec<String>,
    pub protocol: Protocol,
    pub limit: Option<usize>,
    pub batch_size: usize,
    /// Directory of `<task>.<split>.jsonl[.gz]`.
    pub dir: PathBuf,
    pub split: Split,
    pub max_new_tokens: usize,
    pub beams: usize,
}

/// The shipped evaluation subsets (the default of eval `dir`).
pub fn shipped_eval_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets")
        .join("commonsense")
}

pub struct Eval;

impl Stage for Eval {
    fn accelerated(&self) -> bool {
        true
    }

    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn params(&self, b: &BoundStage, file: &SourceFile) -> Result<StageParams, ParamError> {
        Ok(StageParams::new(
            Kind::Eval,
            EvalParams {
                tasks: b.strs("tasks"),
                protocol: b.need_choice("protocol", Protocol::from_name)?,
                limit: count(b.int("limit")).map(|l| l.max(1)),
                batch_size: b.need_usize("batch-size")?.max(1),
                dir: b
                    .str("dir")
                    .map_or_else(shipped_eval_dir, |d| abs_path(file, d)),
                split: b.need_choice("split", Split::from_name)?,
                max_new_tokens: b.need_usize("max-new-tokens")?,
                beams: b.need_usize("beams")?.max(1),
            },
        ))
    }

    fn key_inputs(
        &self,
        b: &BoundStage,
        params: &StageParams,
        memo: &mut DigestMemo,
    ) -> Result<BTreeMap<String, String>, DigestError> {
        let mut out = BTreeMap::new();
        let Some(e) = params.get::<EvalParams>() else {
            return Ok(out);
        };
        let wanted: Vec<String> = e
            .tasks
            .iter()
            .flat_map(|t| {
                [
                    format!("{t}.{}.jsonl", e.split),
                    format!("{t}.{}.jsonl.gz", e.split),
                ]
            })
            .collect();
        let d = if e.dir.is_dir() {
            memo.dir(&e.dir, |n| wanted.iter().any(|w| w == n))?
        } else if b.has("dir") || e.dir != shipped_eval_dir() {
            return Err(DigestError::Io {
                path: e.dir.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        } else {
            "absent".to_string()
        };
        out.insert("dir".into(), d);
        Ok(out)
    }

    fn run(
        &self,
        cx: &JobCx<'_>,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<serde_json::Value, RunError> {
        let src_job = cx.input_job(cx.job, "model")?;
        let src = cx.input("model")?;
        let base;
        let model = match src_job.kind {
            Kind::Train => {
                base = cx.entry_of(cx.base_model_job(src_job)?)?;
                EvalModel::Adapted {
                    base: &base,
                    trained: src,
                }
            }
            // a model directory: a model, prune or merge stage (the checker allows no other)
            _ => EvalModel::Dir(src),
        };
        run::run(cx.ctx, cx.params::<EvalParams>()?, model, out, progress)
    }
}
