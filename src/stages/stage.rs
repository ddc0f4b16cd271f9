//! The [`Stage`] trait: what a stage kind module implements (see the `stages` module docs).

use std::collections::BTreeMap;
use std::path::Path;

use super::params::{ParamError, StageParams};
use crate::check::context::CheckCx;
use crate::diag::Code;
use crate::exec::progress::Progress;
use crate::ir::StageDecl;
use crate::ir::bound::BoundStage;
use crate::plan::digest::{DigestError, DigestMemo};
use crate::plan::job::{Job, Plan};
use crate::plan::memory::JobMemory;
use crate::run::context::JobCx;
use crate::run::error::RunError;
use crate::schema::KindSpec;
use crate::source::SourceFile;

/// One stage kind.
pub trait Stage: Send + Sync + 'static {
    /// The schema: `spec().kind` names the kind.
    fn spec(&self) -> &'static KindSpec;

    /// A kind the planner adds by itself (`tokens`); pipelines cannot write it.
    fn derived(&self) -> bool {
        false
    }

    /// A stage that gathers every job of the stages it references (`report`) instead of having
    /// one job per sweep point of theirs.
    fn collects(&self) -> bool {
        false
    }

    /// The typed params of one bound stage. On a checked pipeline this does not fail: every
    /// option with a default is bound, and the checker enforced types, ranges and choices.
    fn params(&self, b: &BoundStage, file: &SourceFile) -> Result<StageParams, ParamError>;

    /// Groups of options that exclude each other (checked as written, before binding).
    fn conflicts(&self) -> &'static [&'static [&'static str]] {
        &[]
    }

    /// The diagnostic code and help for a reference `prop=` to a stage of a kind it does not take,
    /// when the kind has a more specific one than `rora::resolve::wrong-stage-kind`.
    fn wrong_ref(&self, _prop: &str) -> Option<(Code, &'static str)> {
        None
    }

    /// The input roles a job of this kind tokenizes: its data under `.0`, with the tokenizer of
    /// the base model reached from its input `.1` (the planner adds the `tokens` job).
    fn tokenizes(&self) -> Option<(&'static str, &'static str)> {
        None
    }

    /// Rules on the stage as written (once per stage), e.g. "needs a source".
    fn check_decl(&self, _cx: &mut CheckCx, _stage: &StageDecl) {}

    /// Rules at one sweep point (`single`: the stage has one point).
    fn check(
        &self,
        _cx: &mut CheckCx,
        _stage: &StageDecl,
        _b: &BoundStage,
        _params: &StageParams,
        _single: bool,
    ) {
    }

    /// The hub repository the job downloads, if any: the planner pins its revision to a commit
    /// before the key is derived (`crate::plan::resolve`).
    fn hub_source<'p>(&self, _params: &'p mut StageParams) -> Option<HubSource<'p>> {
        None
    }

    /// Content digests of the job's local inputs (files, directories) that go into its key.
    fn key_inputs(
        &self,
        _b: &BoundStage,
        _params: &StageParams,
        _memo: &mut DigestMemo,
    ) -> Result<BTreeMap<String, String>, DigestError> {
        Ok(BTreeMap::new())
    }

    /// Whether the job computes on the run's device (train, merge, eval, prune). A cluster
    /// executor gives such jobs a GPU and the heavy resources; the others run on a CPU.
    fn accelerated(&self) -> bool {
        false
    }

    /// The job's floating-point work, where the kind knows it (train jobs): with a device's
    /// measured rate it gives the job's time (`rora plan`, the Slurm executor's `--time`).
    fn flops(&self, _plan: &Plan, _job: &Job) -> Option<f64> {
        None
    }

    /// The job's peak memory, where the kind knows it (train jobs).
    fn memory(&self, _plan: &Plan, _job: &Job) -> Option<JobMemory> {
        None
    }

    /// Compute the job into `out` (its reservation's staging dir); the returned JSON goes into
    /// the entry's manifest.
    fn run(
        &self,
        cx: &JobCx<'_>,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<serde_json::Value, RunError>;
}

/// A hub repository a job downloads, with its revision as the planner may rewrite it.
pub struct HubSource<'p> {
    pub kind: crate::hub::RepoKind,
    pub id: &'p mut String,
    pub revision: &'p mut String,
}
