//! The derived `tokens` kind: a data entry's rows tokenized with a model entry's tokenizer. The
//! planner adds one job of it per (data job, base model job) pair that a train job or a prune
//! job's calibration reads (`crate::plan::plan_with`), so a rank sweep tokenizes once; it has no
//! options, and its key is its two upstream keys. Bump the spec's `version` when tokenization
//! changes its output.

mod run;

use std::path::Path;

use serde::Serialize;

pub use run::load;

use super::params::{ParamError, StageParams};
use super::stage::Stage;
use crate::exec::progress::Progress;
use crate::ir::bound::BoundStage;
use crate::run::context::JobCx;
use crate::run::error::RunError;
use crate::schema::{Kind, KindSpec};
use crate::source::SourceFile;

/// The spec: no options.
pub static SPEC: KindSpec = KindSpec {
    kind: Kind::Tokens,
    doc: "A data stage's rows tokenized with a model's tokenizer (planned by rora, not written in pipelines).",
    version: 1,
    props: &[],
    children: &[],
};

/// A tokens job has no options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TokensParams;

pub struct Tokens;

impl Stage for Tokens {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn derived(&self) -> bool {
        true
    }

    fn params(&self, _b: &BoundStage, _file: &SourceFile) -> Result<StageParams, ParamError> {
        Ok(StageParams::new(Kind::Tokens, TokensParams))
    }

    fn run(
        &self,
        cx: &JobCx<'_>,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<serde_json::Value, RunError> {
        run::run(cx.input("data")?, cx.input("model")?, out, progress)
    }
}
