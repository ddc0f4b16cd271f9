//! Stage kinds. Each kind is one module here implementing [`Stage`]: its schema spec (options,
//! types, ranges, defaults, docs), its typed params (an enum for every choice, defaults read from
//! the spec by the binder, never repeated), the local inputs of its key, its semantic checks, its
//! memory estimate and its runner. The checker, the planner, the executor's runner, `rora schema`
//! and the generated `schemas/` all find a kind through [`get`] / [`named`] / [`all`]; none of them
//! matches on a kind list of its own.
//!
//! Adding a kind is one new module plus one line in [`BUILTIN`] (or a [`register`] call, which is
//! how a test adds a toy kind without touching this file; see `tests/integration/toy_stage.rs`).
//! ARCHITECTURE.md ("How to add a stage kind") walks through it.

pub mod adapter;
pub mod data;
pub mod eval;
pub mod merge;
pub mod model;
mod params;
pub mod prune;
pub mod report;
pub mod tokens;
pub mod train;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;

pub use params::{Need, ParamError, StageParams, abs_path};

use crate::check::context::CheckCx;
use crate::diag::Code;
use crate::exec::Progress;
use crate::ir::StageDecl;
use crate::ir::bound::BoundStage;
use crate::plan::digest::{DigestError, DigestMemo};
use crate::plan::job::{Job, Plan};
use crate::plan::memory::JobMemory;
use crate::run::context::JobCx;
use crate::run::error::RunError;
use crate::schema::{Kind, KindSpec};
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

/// The built-in kinds, in the order `rora schema` and `schemas/` list them.
pub static BUILTIN: [&dyn Stage; 9] = [
    &model::Model,
    &prune::Prune,
    &data::Data,
    &adapter::Adapter,
    &train::Train,
    &merge::Merge,
    &eval::Eval,
    &report::Report,
    &tokens::Tokens,
];

static EXTRA: RwLock<Vec<&'static dyn Stage>> = RwLock::new(Vec::new());

/// Why [`register`] refused a kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stage kind named `{0}` is already registered")]
pub struct AlreadyRegistered(pub &'static str);

/// Add a kind beside the built-in ones (for the rest of the process).
pub fn register(stage: &'static dyn Stage) -> Result<(), AlreadyRegistered> {
    let name = stage.spec().kind.name();
    if get(stage.spec().kind).is_some() {
        return Err(AlreadyRegistered(name));
    }
    // A poisoned lock only means a panic elsewhere while registering: the list is still valid.
    let mut extra = EXTRA.write().unwrap_or_else(|e| e.into_inner());
    extra.push(stage);
    Ok(())
}

/// Every kind: the built-in ones, then the registered ones.
pub fn all() -> Vec<&'static dyn Stage> {
    let extra = EXTRA.read().unwrap_or_else(|e| e.into_inner());
    BUILTIN
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

/// The kinds a pipeline may write.
pub fn writable() -> Vec<&'static dyn Stage> {
    all().into_iter().filter(|s| !s.derived()).collect()
}

/// The kind `kind`.
pub fn get(kind: Kind) -> Option<&'static dyn Stage> {
    all().into_iter().find(|s| s.spec().kind == kind)
}

/// The writable kind named `name` (a node name in a pipeline).
pub fn named(name: &str) -> Option<&'static dyn Stage> {
    writable()
        .into_iter()
        .find(|s| s.spec().kind.name() == name)
}

/// The spec of `kind`; an unknown kind (none is ever made by the checker) has an empty one.
pub fn spec(kind: Kind) -> &'static KindSpec {
    static UNKNOWN: KindSpec = KindSpec {
        kind: Kind("unknown"),
        doc: "",
        version: 0,
        props: &[],
        children: &[],
    };
    get(kind).map_or(&UNKNOWN, |s| s.spec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_complete_and_consistent() {
        let mut names: Vec<&str> = all().iter().map(|s| s.spec().kind.name()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "kind names are unique");
        for s in all() {
            let spec = s.spec();
            let mut children: Vec<_> = spec.children.iter().map(|c| c.name).collect();
            children.sort();
            children.dedup();
            assert_eq!(children.len(), spec.children.len(), "{}", spec.kind.name());
            for c in spec.children {
                if let Some(d) = &c.default {
                    assert!(d.fits(&c.args), "{}.{} default", spec.kind.name(), c.name);
                }
                for p in c.props {
                    if let Some(d) = &p.default {
                        assert!(
                            d.fits(&crate::schema::Args::One(p.ty)),
                            "{}.{}.{} default",
                            spec.kind.name(),
                            c.name,
                            p.name
                        );
                    }
                }
            }
        }
        assert!(named("tokens").is_none(), "derived kinds are not writable");
        assert_eq!(named("train").map(|s| s.spec().kind), Some(Kind::Train));
        assert!(register(&train::Train).is_err());
    }
}
