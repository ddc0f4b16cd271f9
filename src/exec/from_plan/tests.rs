//! The executor over real plans (planner from `src/plan`) with a fake runner: the reuse rules of
//! issue 5 ("adding a rank computes only that rank's branch", "changing a training value
//! recomputes train and what follows it, not model loading or tokenization").

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Mutex;

use crate::cache::{Entry, Store};
use crate::exec::{
    ExecOptions, Executor, JobSpec, Outcome, Progress, Reporters, RunSummary, StageError,
    StageRunner,
};
use crate::plan::{DigestMemo, plan};

use super::jobs_from_plan;

fn pipeline(dir: &Path, ranks: &str, lr: &str) -> String {
    format!(
        r#"
sweep rank {ranks}
model "tiny" {{
    random layers=1 hidden=32 heads=2 kv-heads=1 ffn=64 seed=0
    dtype "f32"
}}
data "cs" {{
    files "{}/train.jsonl"
    template "llm-adapters"
    max-len 64
}}
adapter "ad" model="tiny" {{
    method "lora"
    scaling "rora"
    rank (sweep)"rank"
    alpha 16
    targets "q_proj" "v_proj"
}}
train "ft" adapter="ad" data="cs" {{
    steps 4
    batch 2 micro=2
    lr {lr}
    seed 42
}}
"#,
        dir.display()
    )
}

fn jobs(dir: &Path, ranks: &str, lr: &str) -> Vec<JobSpec> {
    let text = pipeline(dir, ranks, lr);
    let checked = crate::check::check_bytes(dir.join("p.kdl"), text.as_bytes());
    let p = checked
        .pipeline
        .unwrap_or_else(|| panic!("pipeline must check: {:?}", checked.diagnostics));
    jobs_from_plan(&plan(&p, &mut DigestMemo::new()).unwrap())
}

#[derive(Default)]
struct Counting(Mutex<BTreeMap<String, usize>>);

impl StageRunner for Counting {
    fn run(
        &self,
        job: &JobSpec,
        inputs: &[Entry],
        out: &Path,
        _: &dyn Progress,
    ) -> Result<serde_json::Value, StageError> {
        *self.0.lock().unwrap().entry(job.label.clone()).or_default() += 1;
        fs::write(
            out.join("out.txt"),
            format!("{} <- {}", job.label, inputs.len()),
        )?;
        Ok(serde_json::Value::Null)
    }
}

fn computed(s: &RunSummary) -> Vec<String> {
    s.jobs
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Computed { .. }))
        .map(|(j, _)| j.label.clone())
        .collect()
}

#[test]
fn plan_jobs_convert_with_ids_deps_and_keys() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("train.jsonl"),
        "{\"instruction\": \"q\", \"output\": \"a\"}\n",
    )
    .unwrap();
    let js = jobs(tmp.path(), "4 8", "1e-3");
    let labels: Vec<&str> = js.iter().map(|j| j.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "tiny",
            "cs",
            "ad@rank=4",
            "ad@rank=8",
            "cs.tokens.tiny",
            "ft@rank=4",
            "ft@rank=8"
        ]
    );
    assert!(
        js.iter()
            .enumerate()
            .all(|(i, j)| j.id == i && j.deps.iter().all(|&d| d < i))
    );
    assert_eq!(js[4].kind, "tokens");
    assert_eq!(js[4].deps, [1, 0], "tokens read the data and the model");
    assert_eq!(
        js[5].deps,
        [2, 1, 4],
        "ft@rank=4 reads its adapter, the data and the tokenized data"
    );
    assert_eq!(js[5].kind, "train");
    assert_eq!(js[5].fingerprint["kind"], "train");
    assert_eq!(js[5].point, [("rank".to_string(), "4".to_string())]);
}

#[test]
fn adding_a_rank_or_changing_lr_recomputes_only_what_depends_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("train.jsonl"),
        "{\"instruction\": \"q\", \"output\": \"a\"}\n",
    )
    .unwrap();
    let store = Store::open(tmp.path().join("cache")).unwrap();
    let runner = Counting::default();
    let reporters = Reporters::new();
    let exec = Executor {
        store: &store,
        runner: &runner,
        reporters: &reporters,
        options: ExecOptions::default(),
    };

    let first = exec.run(&jobs(tmp.path(), "4 8", "1e-3")).unwrap();
    assert_eq!(first.counts().computed, 7);
    assert!(
        computed(&exec.run(&jobs(tmp.path(), "4 8", "1e-3")).unwrap()).is_empty(),
        "second run: all hits"
    );

    let more = exec.run(&jobs(tmp.path(), "4 8 16", "1e-3")).unwrap();
    assert_eq!(computed(&more), ["ad@rank=16", "ft@rank=16"]);

    let new_lr = exec.run(&jobs(tmp.path(), "4 8 16", "2e-3")).unwrap();
    assert_eq!(computed(&new_lr), ["ft@rank=4", "ft@rank=8", "ft@rank=16"]);
    assert_eq!(
        runner.0.lock().unwrap()["tiny"],
        1,
        "the model was built once"
    );
}
