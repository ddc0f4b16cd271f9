//! The `eval` stage: multiple-choice tasks (built in, or task files: `tasks.rs`) under one protocol (llm-adapters generation, or lm-eval
//! style log-likelihood), on a base, pruned or merged model or on a train stage's unmerged
//! adapter. Its key covers the task files it reads (by content).

mod run;
pub mod tasks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use run::EvalModel;

use super::params::{Need, count};
use super::params::{ParamError, StageParams, abs_path};
use super::stage::Stage;
use crate::check::context::CheckCx;
use crate::diag::{Code, Diagnostic};
use crate::eval::Protocol;
use crate::eval::subsample::Subset;
use crate::eval::task::TaskKind;
use crate::exec::progress::Progress;
use crate::ir::StageDecl;
use crate::ir::bound::BoundStage;
use crate::plan::digest::{DigestError, DigestMemo};
use crate::run::context::JobCx;
use crate::run::error::RunError;
use crate::schema::registry::{child, def, one, req_prop, required, unkeyed};
use crate::schema::{Args, Default, Kind, KindSpec, Ty};
use crate::source::SourceFile;
pub use tasks::TaskName;

pub static SPEC: KindSpec = KindSpec {
    kind: Kind::Eval,
    doc: "Evaluate a model (base, pruned, merged, a train stage's unmerged adapter, or a loaded PEFT adapter) on multiple-choice tasks: built-in ones or task files.",
    version: 2,
    props: &[req_prop(
        "model",
        Ty::Stage(&[
            Kind::Model,
            Kind::Prune,
            Kind::Merge,
            Kind::Train,
            Kind::Adapter,
        ]),
        "What to evaluate: a model, prune or merge stage, a train stage (its adapter unmerged), or an adapter stage that loads a PEFT adapter (path / hub).",
    )],
    children: &[
        required(child(
            "tasks",
            "Tasks to evaluate: built-in names (boolq, piqa, siqa, hellaswag, winogrande, arc-e, \
             arc-c, obqa), task files (`quiz.kdl`, relative to the pipeline file; `rora schema \
             task`), or names of row files `<name>.<split>.jsonl[.gz]` in `dir` (read as \
             multiple choice with the default prompts).",
            Args::Many {
                ty: Ty::Str,
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
            "At most this many rows per task, chosen by `subset`.",
            Ty::pos_int(),
        ),
        def(
            one(
                "subset",
                "Which rows `limit` keeps: random (a seeded random subset, in file order: every \
                 part of the file is represented) or first (the first rows, as lm-eval's --limit).",
                Ty::Choice(Subset::NAMES),
            ),
            Default::Str("random"),
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
    pub tasks: Vec<TaskName>,
    pub protocol: Protocol,
    pub limit: Option<usize>,
    pub subset: Subset,
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
                tasks: b
                    .strs("tasks")
                    .iter()
                    .map(|t| TaskName::parse(t, &file.dir()))
                    .collect(),
                protocol: b.need_choice("protocol", Protocol::from_name)?,
                limit: count(b.int("limit")).map(|l| l.max(1)),
                subset: b.need_choice("subset", Subset::from_name)?,
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

    fn check(
        &self,
        cx: &mut CheckCx,
        stage: &StageDecl,
        b: &BoundStage,
        params: &StageParams,
        _single: bool,
    ) {
        let Some(e) = params.get::<EvalParams>() else {
            return;
        };
        if let Some(r) = stage.refs.get("model")
            && let Some(from) = cx.p.stage(&r.name)
            && from.kind == Kind::Adapter
            && !crate::stages::adapter::loads(from)
        {
            cx.push(
                Diagnostic::error(
                    Code::FreshAdapterInput,
                    format!(
                        "eval `{}` takes the adapter stage `{}`, which makes a fresh (untrained) adapter",
                        stage.name, from.name
                    ),
                )
                .label(r.span, "untrained: B = 0")
                .label(from.name_span, "declared here")
                .help("point model= at the train stage that trains this adapter, or load a trained adapter in it with path / hub"),
            );
        }
        for (i, t) in e.tasks.iter().enumerate() {
            // Without `dir` only task files can be checked: an explicit missing `dir` is the
            // files check's, the shipped default missing is the runner's.
            if !e.dir.is_dir() && !matches!(t, TaskName::File(_)) {
                continue;
            }
            let Err(err) = tasks::resolve(t, e.split.name(), &e.dir) else {
                continue;
            };
            let span = cx.arg_span(stage, "tasks", i);
            let d = match &err {
                tasks::Unresolved::Unknown { name, .. } => {
                    let names: Vec<&str> = TaskKind::COMMONSENSE.iter().map(|k| k.name()).collect();
                    let guess = crate::diag::suggest(name, names.iter().copied())
                        .map_or(String::new(), |s| format!("did you mean `{s}`? "));
                    // As written (not absolute), so the message reads the same on every machine.
                    let dir = b
                        .str("dir")
                        .map_or("the shipped datasets/commonsense".to_string(), |d| {
                            format!("`dir` ({d})")
                        });
                    let help = format!(
                        "{guess}built-in tasks are {}; a task file ends in .kdl; rows of any \
                         other name go in `dir` (no {name}.{}.jsonl[.gz] in {dir})",
                        names.join(", "),
                        e.split
                    );
                    Diagnostic::error(
                        Code::UnknownTask,
                        format!("`{name}` is not a task rora knows"),
                    )
                    .label(span, "unknown task")
                    .help(help)
                }
                tasks::Unresolved::Unreadable { path, message } => Diagnostic::error(
                    Code::MissingFile,
                    format!("cannot read task file {}: {message}", path.display()),
                )
                .label(span, "relative to the pipeline file's directory")
                .help("fix the path"),
                tasks::Unresolved::Invalid(c) => Diagnostic::error(
                    Code::BadTaskFile,
                    format!(
                        "task file {} has {} error(s)",
                        c.file.path.display(),
                        c.diagnostics.iter().filter(|d| d.is_error()).count()
                    ),
                )
                .label(span, "this task file")
                .help(format!(
                    "{}\n`rora check {}` shows them with their spans",
                    tasks::task_diagnostics(c),
                    c.file.path.display()
                )),
                tasks::Unresolved::NoRows { task, message } => Diagnostic::error(
                    Code::BadTaskFile,
                    format!("task `{task}` has no rows for split `{}`", e.split),
                )
                .label(span, "this task")
                .help(message.clone()),
            };
            cx.push(d);
        }
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
        for (i, t) in e.tasks.iter().enumerate() {
            for (j, f) in tasks::key_files(t, e.split.name(), &e.dir)
                .iter()
                .enumerate()
            {
                out.insert(format!("task{i}.{j}"), memo.file(f)?);
            }
        }
        let names: Vec<String> = b.strs("tasks");
        let wanted: Vec<String> = names
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
            // an adapter (trained, or loaded from PEFT) on its base model, unmerged
            Kind::Train | Kind::Adapter => {
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
