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
pub mod params;
pub mod prune;
pub mod report;
mod stage;
pub mod tokens;
pub mod train;

use std::sync::RwLock;

pub use params::{Need, ParamError, StageParams, abs_path};
pub use stage::{HubSource, Stage};

use crate::schema::{Kind, KindSpec};

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
                let at = |name: &str| spec.children.iter().position(|x| x.name == name);
                for (opt, _, d) in c.default_when {
                    assert!(
                        d.fits(&c.args),
                        "{}.{} default_when",
                        spec.kind.name(),
                        c.name
                    );
                    // bound in order: the option a default depends on comes first
                    assert!(
                        at(opt) < at(c.name),
                        "{}.{} after {opt}",
                        spec.kind.name(),
                        c.name
                    );
                }
                for (opt, _) in c.optional_when {
                    assert!(
                        at(opt).is_some(),
                        "{}.{} optional_when {opt}",
                        spec.kind.name(),
                        c.name
                    );
                }
                if !c.keyed_at_default {
                    assert!(
                        c.default.is_some(),
                        "{}.{} added later without a default",
                        spec.kind.name(),
                        c.name
                    );
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
