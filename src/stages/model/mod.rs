//! The `model` stage: a base LLaMA-family model from the hub, a local HF directory, a GGUF file or
//! a seeded random init, stored as an HF dir so later stages load it by mmap without converting
//! again. Its key covers the source (a hub commit, a directory's or file's content digest) and the
//! dtype; `device` is not keyed.

mod run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::params::Need;
use super::params::{ParamError, StageParams, abs_path};
use super::stage::{HubSource, Stage};
use crate::check::context::CheckCx;
use crate::check::modelinfo::{gguf_config, hf_config};
use crate::diag::{Code, Diagnostic};
use crate::exec::progress::Progress;
use crate::hub::RepoKind;
use crate::ir::StageDecl;
use crate::ir::bound::BoundStage;
use crate::model::RandomSpec;
use crate::model::config::LlamaConfig;
use crate::plan::digest::{DigestError, DigestMemo};
use crate::run::context::JobCx;
use crate::run::error::RunError;
use crate::schema::registry::{child, def, def_prop, one, props, unkeyed};
use crate::schema::{Args, Default, Dtype, Kind, KindSpec, Ty};
use crate::source::SourceFile;

pub static SPEC: KindSpec = KindSpec {
    kind: Kind::Model,
    doc: "A base LLaMA-family model: from the Hugging Face hub, a local HF directory, a GGUF file, or a random tiny LLaMA.",
    version: 1,
    props: &[],
    children: &[
        props(
            one(
                "hub",
                "Hugging Face hub model id, e.g. \"meta-llama/Meta-Llama-3-8B\".",
                Ty::Str,
            ),
            &[def_prop(
                "revision",
                Ty::Str,
                "Branch, tag or commit; pin a commit for reproducible keys.",
                Default::Str("main"),
            )],
        ),
        one(
            "path",
            "A local Hugging Face model directory (config.json, *.safetensors, tokenizer.json).",
            Ty::Path,
        ),
        one(
            "gguf",
            "A local GGUF file (llama.cpp format; quantized weights are dequantized).",
            Ty::Path,
        ),
        props(
            child(
                "random",
                "A seeded random-initialised tiny LLaMA with a built-in byte-level tokenizer (tests, quickstart).",
                Args::None,
            ),
            &[
                def_prop(
                    "layers",
                    Ty::int(1, 256),
                    "Decoder layers.",
                    Default::Int(2),
                ),
                def_prop(
                    "hidden",
                    Ty::int(8, 16384),
                    "Hidden size.",
                    Default::Int(64),
                ),
                def_prop(
                    "heads",
                    Ty::int(1, 256),
                    "Attention heads.",
                    Default::Int(4),
                ),
                def_prop(
                    "kv-heads",
                    Ty::int(1, 256),
                    "Key/value heads (GQA).",
                    Default::Int(2),
                ),
                def_prop(
                    "ffn",
                    Ty::int(1, 65536),
                    "FFN (gate/up) width.",
                    Default::Int(128),
                ),
                def_prop(
                    "seed",
                    Ty::nonneg_int(),
                    "Weight initialisation seed.",
                    Default::Int(0),
                ),
            ],
        ),
        def(
            one(
                "dtype",
                "Compute dtype of the frozen base weights.",
                Ty::Choice(Dtype::NAMES),
            ),
            Default::Str("f32"),
        ),
        unkeyed(def(
            one("device", "Where to run.", Ty::Choice(DeviceChoice::NAMES)),
            Default::Str("auto"),
        )),
        crate::schema::registry::RESOURCES,
    ],
};

crate::choice_enum! {
    /// Where a model stage asks to run (`rora run --device` overrides it).
    pub enum DeviceChoice {
        Auto = "auto",
        Cpu = "cpu",
        Cuda = "cuda",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RandomModel {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelSource {
    Hub { id: String, revision: String },
    Path(PathBuf),
    Gguf(PathBuf),
    Random(RandomModel),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelParams {
    pub source: ModelSource,
    pub dtype: Dtype,
    pub device: DeviceChoice,
}

/// The options that name a source; exactly one is given.
const SOURCES: [&str; 4] = ["hub", "path", "gguf", "random"];

/// The config of a model stage, or `Ok(None)` when it is not available offline (a hub model).
pub fn model_config(p: &ModelParams) -> Result<Option<LlamaConfig>, String> {
    match &p.source {
        // exactly the config the runner builds
        ModelSource::Random(r) => Ok(Some(
            RandomSpec::uniform(r.hidden, r.layers, r.heads, r.kv_heads, r.ffn, r.seed).config,
        )),
        ModelSource::Path(dir) => hf_config(&dir.join("config.json")),
        ModelSource::Gguf(file) => gguf_config(file),
        ModelSource::Hub { .. } => Ok(None),
    }
}

pub struct Model;

impl Stage for Model {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn params(&self, b: &BoundStage, file: &SourceFile) -> Result<StageParams, ParamError> {
        let source = if let Some(id) = b.str("hub") {
            ModelSource::Hub {
                id: id.into(),
                revision: b.need_prop_str("hub", "revision")?.into(),
            }
        } else if let Some(p) = b.str("path") {
            ModelSource::Path(abs_path(file, p))
        } else if let Some(p) = b.str("gguf") {
            ModelSource::Gguf(abs_path(file, p))
        } else if b.has("random") {
            ModelSource::Random(RandomModel {
                layers: b.need_prop_usize("random", "layers")?,
                hidden: b.need_prop_usize("random", "hidden")?,
                heads: b.need_prop_usize("random", "heads")?,
                kv_heads: b.need_prop_usize("random", "kv-heads")?,
                ffn: b.need_prop_usize("random", "ffn")?,
                seed: b.need_prop_int("random", "seed")?.max(0) as u64,
            })
        } else {
            return Err(b.missing("hub | path | gguf | random"));
        };
        Ok(StageParams::new(
            Kind::Model,
            ModelParams {
                source,
                dtype: b.need_choice("dtype", Dtype::from_name)?,
                device: b.need_choice("device", DeviceChoice::from_name)?,
            },
        ))
    }

    fn conflicts(&self) -> &'static [&'static [&'static str]] {
        &[&SOURCES]
    }

    fn check_decl(&self, cx: &mut CheckCx, stage: &StageDecl) {
        if !SOURCES.iter().any(|n| stage.fields.contains_key(*n)) {
            cx.push(
                Diagnostic::error(
                    Code::NoModelSource,
                    format!("model `{}` has no source", stage.name),
                )
                .label(stage.name_span, "declared here")
                .help("add one of: hub \"org/name\", path \"dir\", gguf \"file.gguf\", random layers=2 hidden=64"),
            );
        }
    }

    fn check(
        &self,
        cx: &mut CheckCx,
        stage: &StageDecl,
        _b: &BoundStage,
        params: &StageParams,
        single: bool,
    ) {
        let Some(m) = params.get::<ModelParams>() else {
            return;
        };
        if let ModelSource::Random(r) = &m.source
            && (r.hidden % r.heads != 0 || r.heads % r.kv_heads != 0)
        {
            cx.push(
                Diagnostic::error(Code::OutOfRange, format!("random model `{}`: hidden ({}) must be a multiple of heads ({}), and heads of kv-heads ({})", stage.name, r.hidden, r.heads, r.kv_heads))
                    .label(cx.span_of(stage, "random"), "these dimensions")
                    .help("e.g. hidden=64 heads=4 kv-heads=2"),
            );
        }
        cx.quantized
            .insert(stage.name.clone(), matches!(m.source, ModelSource::Gguf(_)));
        let cfg = if single {
            match model_config(m) {
                Ok(c) => c,
                Err(e) => {
                    let f = if stage.fields.contains_key("gguf") {
                        "gguf"
                    } else {
                        "path"
                    };
                    cx.push(
                        Diagnostic::warning(Code::ModelConfig, e)
                            .label(cx.arg_span(stage, f, 0), "this model")
                            .help("rank and layer checks are skipped for this model"),
                    );
                    None
                }
            }
        } else {
            None
        };
        cx.configs.insert(stage.name.clone(), cfg);
    }

    fn hub_source<'p>(&self, params: &'p mut StageParams) -> Option<HubSource<'p>> {
        match &mut params.get_mut::<ModelParams>()?.source {
            ModelSource::Hub { id, revision } => Some(HubSource {
                kind: RepoKind::Model,
                id,
                revision,
            }),
            _ => None,
        }
    }

    fn key_inputs(
        &self,
        _b: &BoundStage,
        params: &StageParams,
        memo: &mut DigestMemo,
    ) -> Result<BTreeMap<String, String>, DigestError> {
        let mut out = BTreeMap::new();
        match params.get::<ModelParams>().map(|p| &p.source) {
            Some(ModelSource::Path(dir)) => {
                let keep = |n: &str| {
                    n.ends_with(".json")
                        || n.ends_with(".safetensors")
                        || n.ends_with(".model")
                        || n.ends_with(".txt")
                };
                out.insert("path".into(), memo.dir(dir, keep)?);
            }
            Some(ModelSource::Gguf(f)) => {
                out.insert("gguf".into(), memo.file(f)?);
            }
            _ => {}
        }
        Ok(out)
    }

    fn run(
        &self,
        cx: &JobCx<'_>,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<serde_json::Value, RunError> {
        run::run(cx.ctx, cx.params::<ModelParams>()?, out, progress)
    }
}
