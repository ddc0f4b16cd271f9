//! Hub revisions in stage keys: a `hub "org/name" revision="main"` source is keyed by the commit
//! the revision resolves to when the plan is made, not by the branch name.
//!
//! [`Pins`] asks a [`HubResolver`] for the commit of every hub source (model and data stages; one
//! question per repo and revision) while the planner keys each job, before its key is derived, so
//! a key is derived once: the commit goes into the key's `inputs` as `hub`, the `revision` property
//! leaves the keyed params (so `revision="main"` and `revision="<that sha>"` give the same key), and
//! the typed params carry the commit as their revision (so the runner downloads exactly the commit
//! the key names, even if the branch moves while the run is going). Moving a branch on the hub thus
//! makes that stage and everything downstream of it a miss; the same commit is a hit.
//!
//! [`super::plan`] uses [`Unresolved`]: no network, hub sources keyed by the revision as written
//! (what `rora check`-time tools and tests without a hub need). `rora plan`, `run`, `explain`,
//! `show-output` and `cache gc` plan with [`crate::hub::LazyHub`], which honours `HF_ENDPOINT`,
//! the token and `HF_HUB_OFFLINE=1` (a branch then resolves through the HF cache's `refs/`);
//! `run` and `gc` with a strict one (an unresolvable revision is a [`PlanError::Hub`]), the
//! read-only commands with a lenient one (a warning, and the revision name in the key).

use std::collections::BTreeMap;

use crate::hub::{HubError, RepoKind};
use crate::stages::{self, StageParams};

use super::key::Canon;
use super::{Fingerprint, PlanError};

pub use crate::hub::HubResolver;

/// Resolves nothing: hub sources are keyed by their revision as written. No network.
pub struct Unresolved;

impl HubResolver for Unresolved {
    fn commit(&mut self, _: RepoKind, _: &str, _: &str) -> Result<Option<String>, HubError> {
        Ok(None)
    }
}

/// The key input name of a pinned hub commit.
pub const HUB_INPUT: &str = "hub";

/// Pins hub sources while the planner keys jobs: one question per repo and revision.
pub struct Pins<'r> {
    resolver: &'r mut dyn HubResolver,
    memo: BTreeMap<(bool, String, String), Option<String>>,
}

impl<'r> Pins<'r> {
    pub fn new(resolver: &'r mut dyn HubResolver) -> Self {
        Self {
            resolver,
            memo: BTreeMap::new(),
        }
    }

    /// Pin the hub source of one job, before its key is derived (see the module docs): the commit
    /// goes into `fingerprint.inputs` as `hub`, the `revision` property leaves the keyed params, and
    /// `params` carry the commit as their revision. Jobs without a hub source are left alone.
    pub fn pin(
        &mut self,
        label: &str,
        params: &mut StageParams,
        fingerprint: &mut Fingerprint,
    ) -> Result<(), PlanError> {
        let Some(stage) = stages::get(params.kind()) else {
            return Ok(());
        };
        let Some(stages::HubSource { kind, id, revision }) = stage.hub_source(params) else {
            return Ok(());
        };
        let k = (kind == RepoKind::Model, id.clone(), revision.clone());
        let id = id.as_str();
        let commit = match self.memo.get(&k) {
            Some(c) => c.clone(),
            None => {
                let c =
                    self.resolver
                        .commit(kind, id, revision)
                        .map_err(|source| PlanError::Hub {
                            stage: label.to_string(),
                            source: Box::new(source),
                        })?;
                self.memo.insert(k, c.clone());
                c
            }
        };
        let Some(commit) = commit else {
            return Ok(());
        };
        *revision = commit.clone();
        fingerprint.inputs.insert(HUB_INPUT.to_string(), commit);
        if let Some(Canon::Map(m)) = fingerprint.params.get_mut("hub") {
            m.remove("revision");
            // `hub "x" revision=".."` keys like `hub "x"`: the commit says which.
            if m.len() == 1
                && let Some(Canon::List(args)) = m.get("args")
                && let [only] = args.as_slice()
            {
                let only = only.clone();
                fingerprint.params.insert("hub".into(), only);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check_bytes;
    use crate::plan::{DigestMemo, Plan, plan, plan_with};
    use crate::stages::model::{ModelParams, ModelSource};

    const SRC: &str = r#"
model "m" {
    hub "org/tiny" revision="REV"
}
adapter "a" model="m" {
    rank 4
    alpha 8
    targets "q_proj"
}
"#;

    /// Answers from a table; counts the questions.
    struct Table(Vec<(&'static str, &'static str)>, usize);

    impl HubResolver for Table {
        fn commit(
            &mut self,
            kind: RepoKind,
            repo: &str,
            revision: &str,
        ) -> Result<Option<String>, HubError> {
            assert_eq!((kind, repo), (RepoKind::Model, "org/tiny"));
            self.1 += 1;
            self.0
                .iter()
                .find(|(r, _)| *r == revision)
                .map(|(_, c)| Some(c.to_string()))
                .ok_or_else(|| HubError::RevisionNotFound {
                    repo: repo.into(),
                    revision: revision.into(),
                })
        }
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn planned(rev: &str, main_is: &'static str) -> Result<Plan, PlanError> {
        let r = check_bytes("p.kdl", SRC.replace("REV", rev).as_bytes());
        assert!(!r.has_errors(), "{:?}", r.diagnostics);
        let mut t = Table(vec![("main", main_is), (A, A), (B, B)], 0);
        let p = plan_with(&r.pipeline.unwrap(), &mut DigestMemo::new(), &mut t);
        assert!(t.1 <= 1, "one question per repo and revision");
        p
    }

    fn keys(p: &Plan) -> Vec<String> {
        p.jobs.iter().map(|j| j.key.0.clone()).collect()
    }

    #[test]
    fn keys_pin_the_resolved_commit_not_the_branch_name() {
        let main_a = planned("main", A).unwrap();
        let m = &main_a.jobs[0];
        assert_eq!(
            m.fingerprint.inputs.get(HUB_INPUT).map(String::as_str),
            Some(A)
        );
        assert_eq!(m.fingerprint.params["hub"], Canon::Str("org/tiny".into()));
        let p = m.params.get::<ModelParams>().unwrap();
        assert_eq!(
            p.source,
            ModelSource::Hub {
                id: "org/tiny".into(),
                revision: A.into()
            }
        );
        // The adapter's key follows its model's new key.
        assert_eq!(
            main_a.jobs[1].fingerprint.upstream["model"],
            vec![m.key.0.clone()]
        );
        assert_eq!(main_a.jobs[1].key, main_a.jobs[1].fingerprint.key());
        // Same commit by branch or by sha: same keys. Branch moved: every key changes.
        assert_eq!(keys(&main_a), keys(&planned(A, B).unwrap()));
        let main_b = planned("main", B).unwrap();
        assert!(
            keys(&main_a)
                .iter()
                .zip(keys(&main_b))
                .all(|(x, y)| *x != y)
        );
        // Unresolved planning keys by the revision as written (no network).
        let r = check_bytes("p.kdl", SRC.replace("REV", "main").as_bytes());
        let unresolved = plan(&r.pipeline.unwrap(), &mut DigestMemo::new()).unwrap();
        assert!(unresolved.jobs[0].fingerprint.inputs.is_empty());
        assert_ne!(keys(&unresolved), keys(&main_a));
    }

    #[test]
    fn an_unresolvable_revision_is_a_plan_error_naming_the_stage() {
        let e = planned("nope", A).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("stage `m`"), "{text}");
        assert!(text.contains("revision `nope` not found"), "{text}");
    }
}
