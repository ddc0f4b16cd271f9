//! The `data` stage: training rows from local files or a hub dataset, read and validated (a bad
//! row fails here, naming file, line and field), and the data config recorded. Tokenization needs
//! a model's tokenizer, so it is a job of its own, planned per (data, model) pair
//! (`super::tokens`).

mod run;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

pub use run::DataRecord;

use super::params::{Need, count};
use super::params::{ParamError, StageParams, abs_path};
use super::stage::{HubSource, Stage};
use crate::check::context::CheckCx;
use crate::diag::{Code, Diagnostic};
use crate::exec::progress::Progress;
use crate::hub::RepoKind;
use crate::ir::StageDecl;
use crate::ir::bound::BoundStage;
use crate::plan::digest::{DigestError, DigestMemo};
use crate::run::context::JobCx;
use crate::run::error::RunError;
use crate::schema::registry::{added_later, child, def, def_prop, one, prop, props};
use crate::schema::{Args, Default, Kind, KindSpec, TASKS, Ty};
use crate::source::SourceFile;
use crate::train::data::template::{TemplateChoice, TrainOn};
use crate::train::data::{FileFormat, Task, Template};

pub static SPEC: KindSpec = KindSpec {
    kind: Kind::Data,
    doc: "Training rows: multiple-choice commonsense rows (id, question, choices, label), instruction rows, or conversations (messages, ShareGPT conversations), from files or the hub.",
    version: 1,
    props: &[],
    children: &[
        child(
            "files",
            "Local files or globs (.jsonl, .json, .parquet, optionally .gz). The task of each file comes from its name (boolq.train.jsonl -> boolq).",
            Args::Many {
                ty: Ty::Glob,
                min: 1,
            },
        ),
        props(
            one("hub", "A Hugging Face hub dataset id.", Ty::Str),
            &[
                def_prop("split", Ty::Str, "Split to read.", Default::Str("train")),
                prop("config", Ty::Str, "Dataset configuration name."),
                def_prop(
                    "revision",
                    Ty::Str,
                    "Branch, tag or commit.",
                    Default::Str("main"),
                ),
            ],
        ),
        def(
            one(
                "format",
                "File format; auto uses the extension.",
                Ty::Choice(FormatChoice::NAMES),
            ),
            Default::Str("auto"),
        ),
        props(
            def(
                one(
                    "template",
                    "Prompt template: llm-adapters, alpaca, chatml and raw are built in; model renders with the model's own chat template (chat rows: messages or ShareGPT conversations).",
                    Ty::Choice(TemplateChoice::NAMES),
                ),
                Default::Str("llm-adapters"),
            ),
            &[added_later(def_prop(
                "train-on",
                Ty::Choice(TrainOn::NAMES),
                "With template \"model\": the tokens that carry the loss, the assistant's turns or all.",
                Default::Str("assistant"),
            ))],
        ),
        one(
            "task",
            "Task of every row (overrides the file name).",
            Ty::Choice(TASKS),
        ),
        def(
            one("max-len", "Cutoff length in tokens.", Ty::int(8, 1 << 20)),
            Default::Int(256),
        ),
        def(
            one(
                "train-on-inputs",
                "Compute the loss over the prompt too (LLM-Adapters default), not only the response. For template \"model\", use its train-on= instead.",
                Ty::Bool,
            ),
            Default::Bool(true),
        ),
        props(
            def(
                one(
                    "validation",
                    "Rows held out for validation.",
                    Ty::nonneg_int(),
                ),
                Default::Int(0),
            ),
            &[def_prop(
                "seed",
                Ty::nonneg_int(),
                "Seed of the held-out split.",
                Default::Int(42),
            )],
        ),
        one(
            "limit",
            "Use at most this many rows (after shuffling with the validation seed).",
            Ty::pos_int(),
        ),
        crate::schema::registry::RESOURCES,
    ],
};

crate::choice_enum! {
    /// A data file format; `auto` takes it from each file's extension.
    pub enum FormatChoice {
        Auto = "auto",
        Jsonl = "jsonl",
        Json = "json",
        Parquet = "parquet",
    }
}

impl FormatChoice {
    /// The format every file is read as (`None`: by extension).
    pub fn file_format(self) -> Option<FileFormat> {
        match self {
            FormatChoice::Auto => None,
            FormatChoice::Jsonl => Some(FileFormat::Jsonl),
            FormatChoice::Json => Some(FileFormat::Json),
            FormatChoice::Parquet => Some(FileFormat::Parquet),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSource {
    /// Absolute glob patterns (expand with `glob`).
    Files(Vec<String>),
    Hub {
        id: String,
        split: String,
        config: Option<String>,
        revision: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataParams {
    pub source: DataSource,
    pub format: FormatChoice,
    pub template: Template,
    /// Task of every row; `None`: from each file's name.
    pub task: Option<Task>,
    pub max_len: usize,
    pub train_on_inputs: bool,
    pub validation: usize,
    pub validation_seed: u64,
    pub limit: Option<usize>,
}

pub struct Data;

impl Stage for Data {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn params(&self, b: &BoundStage, file: &SourceFile) -> Result<StageParams, ParamError> {
        let source = if b.has("files") {
            let pats = b
                .strs("files")
                .iter()
                .map(|p| abs_path(file, p).to_string_lossy().into_owned())
                .collect();
            DataSource::Files(pats)
        } else if let Some(id) = b.str("hub") {
            DataSource::Hub {
                id: id.into(),
                split: b.need_prop_str("hub", "split")?.into(),
                config: b
                    .prop("hub", "config")
                    .and_then(|v| v.as_str())
                    .map(String::from),
                revision: b.need_prop_str("hub", "revision")?.into(),
            }
        } else {
            return Err(b.missing("files | hub"));
        };
        let task = match b.str("task") {
            Some(t) => Some(Task::parse(t).ok_or_else(|| b.missing("task"))?),
            None => None,
        };
        Ok(StageParams::new(
            Kind::Data,
            DataParams {
                source,
                format: b.need_choice("format", FormatChoice::from_name)?,
                template: Template::new(
                    b.need_choice("template", TemplateChoice::from_name)?,
                    TrainOn::from_name(b.need_prop_str("template", "train-on")?)
                        .ok_or_else(|| b.missing("template train-on="))?,
                ),
                task,
                max_len: b.need_usize("max-len")?,
                train_on_inputs: b.need_bool("train-on-inputs")?,
                validation: b.need_usize("validation")?,
                validation_seed: b.need_prop_int("validation", "seed")?.max(0) as u64,
                limit: count(b.int("limit")),
            },
        ))
    }

    fn conflicts(&self) -> &'static [&'static [&'static str]] {
        &[&["files", "hub"]]
    }

    fn check_decl(&self, cx: &mut CheckCx, stage: &StageDecl) {
        check_loss_options(cx, stage);
        if !["files", "hub"]
            .iter()
            .any(|n| stage.fields.contains_key(*n))
        {
            cx.push(
                Diagnostic::error(
                    Code::MissingChild,
                    format!(
                        "data `{}` has no rows: it needs `files` or `hub`",
                        stage.name
                    ),
                )
                .label(stage.name_span, "declared here")
                .help("add files \"../datasets/commonsense/*.train.jsonl\" or hub \"org/dataset\""),
            );
        }
    }

    fn hub_source<'p>(&self, params: &'p mut StageParams) -> Option<HubSource<'p>> {
        match &mut params.get_mut::<DataParams>()?.source {
            DataSource::Hub { id, revision, .. } => Some(HubSource {
                kind: RepoKind::Dataset,
                id,
                revision,
            }),
            DataSource::Files(_) => None,
        }
    }

    fn key_inputs(
        &self,
        _b: &BoundStage,
        params: &StageParams,
        memo: &mut DigestMemo,
    ) -> Result<BTreeMap<String, String>, DigestError> {
        let mut out = BTreeMap::new();
        if let Some(DataSource::Files(pats)) = params.get::<DataParams>().map(|p| &p.source) {
            let digests = pats
                .iter()
                .map(|p| memo.glob(p))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(
                "files".into(),
                blake3::hash(digests.join(",").as_bytes())
                    .to_hex()
                    .to_string(),
            );
        }
        Ok(out)
    }

    fn run(
        &self,
        cx: &JobCx<'_>,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<serde_json::Value, RunError> {
        run::run(cx.params::<DataParams>()?, out, progress)
    }
}

/// `train-on=` is the `model` template's loss option and `train-on-inputs` the other templates':
/// each written where the other belongs is an error, not silently ignored.
fn check_loss_options(cx: &mut CheckCx, stage: &StageDecl) {
    let Some(field) = stage.field("template") else {
        return;
    };
    let Some(chosen) = field
        .args
        .first()
        .and_then(|a| a.lit())
        .and_then(|v| v.as_str())
    else {
        return;
    };
    let conflict = match (chosen, field.props.get("train-on")) {
        ("model", _) if stage.fields.contains_key("train-on-inputs") => Some((
            cx.span_of(stage, "train-on-inputs"),
            "template \"model\" puts the loss on the assistant's turns; for every token write template \"model\" train-on=\"all\"",
        )),
        (t, Some(prop)) if t != "model" => Some((
            prop.span(),
            "train-on= is for template \"model\"; the other templates use train-on-inputs",
        )),
        _ => None,
    };
    if let Some((span, help)) = conflict {
        cx.push(
            Diagnostic::error(
                Code::ConflictingOptions,
                format!(
                    "data `{}`: this loss option does not apply to template `{chosen}`",
                    stage.name
                ),
            )
            .label(span, "not for this template")
            .label(cx.arg_span(stage, "template", 0), "the template")
            .help(help),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_choice_lists_the_commonsense_tasks() {
        let names: Vec<&str> = Task::COMMONSENSE.iter().map(|t| t.name()).collect();
        assert_eq!(names, TASKS);
    }
}
