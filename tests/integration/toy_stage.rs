//! A stage kind added in one file: `toy` writes a greeting for a model. It is registered at run
//! time (`rora::stages::register`), and the checker (unknown options, a semantic rule), the
//! planner (one job per sweep point, keyed by its options and its model's key) and the runner
//! (an entry with its file, cached on the second run) all pick it up without a line elsewhere.

use std::path::Path;
use std::sync::Once;

use rora::cache::Store;
use rora::check::check_bytes;
use rora::check::context::CheckCx;
use rora::diag::{Code, Diagnostic};
use rora::exec::{ExecOptions, Executor, Outcome, Progress, Reporters, jobs_from_plan};
use rora::ir::StageDecl;
use rora::ir::bound::BoundStage;
use rora::plan::{DigestMemo, plan};
use rora::run::{JobCx, PipelineRunner, RunError};
use rora::schema::registry::{def, one, req_prop};
use rora::schema::{Default, Kind, KindSpec, Ty};
use rora::source::SourceFile;
use rora::stages::{ParamError, Stage, StageParams};

const TOY: Kind = Kind("toy");

static SPEC: KindSpec = KindSpec {
    kind: TOY,
    doc: "Write a greeting beside a model (a test kind).",
    version: 1,
    props: &[req_prop(
        "model",
        Ty::Stage(&[Kind::Model]),
        "The model to greet.",
    )],
    children: &[
        def(
            one("greeting", "What to write.", Ty::Str),
            Default::Str("hello"),
        ),
        def(one("times", "How often.", Ty::int(1, 10)), Default::Int(1)),
    ],
};

#[derive(Debug, serde::Serialize)]
struct ToyParams {
    greeting: String,
    times: usize,
}

struct Toy;

impl Stage for Toy {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn params(&self, b: &BoundStage, _file: &SourceFile) -> Result<StageParams, ParamError> {
        use rora::stages::Need;
        Ok(StageParams::new(
            TOY,
            ToyParams {
                greeting: b.need_str("greeting")?.to_string(),
                times: b.need_usize("times")?,
            },
        ))
    }

    fn check(
        &self,
        cx: &mut CheckCx,
        stage: &StageDecl,
        _b: &BoundStage,
        params: &StageParams,
        _single: bool,
    ) {
        if params
            .get::<ToyParams>()
            .is_some_and(|p| p.greeting.is_empty())
        {
            cx.push(
                Diagnostic::error(Code::OutOfRange, "an empty greeting")
                    .label(cx.span_of(stage, "greeting"), "here"),
            );
        }
    }

    fn run(
        &self,
        cx: &JobCx<'_>,
        out: &Path,
        _progress: &dyn Progress,
    ) -> Result<serde_json::Value, RunError> {
        let p = cx.params::<ToyParams>()?;
        // the model input is a committed entry like any other
        let model = cx.input("model")?;
        let text = format!("{} ({})\n", p.greeting, model.key()).repeat(p.times);
        std::fs::write(out.join("greeting.txt"), text).map_err(|source| RunError::Io {
            path: out.join("greeting.txt"),
            source,
        })?;
        Ok(serde_json::json!({ "times": p.times }))
    }
}

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| rora::stages::register(&Toy).expect("`toy` is a new kind"));
}

const PIPELINE: &str = r#"
sweep times 1 2
model "m" {
    random layers=1 hidden=16 heads=2 kv-heads=1 ffn=32 seed=1
}
toy "hi" model="m" {
    greeting "hi there"
    times (sweep)"times"
}
"#;

#[test]
fn a_kind_added_in_one_file_is_checked_planned_and_run() {
    register();
    // check: the kind's options come from its spec
    let bad = check_bytes(
        "p.kdl",
        b"model \"m\" {\n    random\n}\ntoy \"t\" model=\"m\" {\n    greting \"x\"\n}\n",
    );
    assert!(bad.has_errors());
    let text = format!("{:?}", bad.diagnostics);
    assert!(text.contains("greting"), "{text}");
    let empty = check_bytes(
        "p.kdl",
        b"model \"m\" {\n    random\n}\ntoy \"t\" model=\"m\" {\n    greeting \"\"\n}\n",
    );
    assert!(
        format!("{:?}", empty.diagnostics).contains("an empty greeting"),
        "{:?}",
        empty.diagnostics
    );

    // plan: one job per point, keyed by the options and the model's key
    let checked = check_bytes("p.kdl", PIPELINE.as_bytes());
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let p = plan(&checked.pipeline.unwrap(), &mut DigestMemo::new()).unwrap();
    let toys: Vec<_> = p.jobs.iter().filter(|j| j.kind == TOY).collect();
    assert_eq!(toys.len(), 2);
    assert_ne!(toys[0].key, toys[1].key);
    assert_eq!(toys[0].fingerprint.kind, "toy");
    assert_eq!(
        toys[0].fingerprint.upstream["model"],
        vec![p.find("m").unwrap().key.0.clone()]
    );

    // run: the executor commits each toy entry, and a rerun is all hits
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("cache")).unwrap();
    let runner = PipelineRunner::new(&p, &store, candle_core::Device::Cpu);
    let reporters = Reporters::new();
    let exec = Executor {
        store: &store,
        runner: &runner,
        reporters: &reporters,
        options: ExecOptions::default(),
    };
    let jobs = jobs_from_plan(&p);
    let first = exec.run(&jobs).unwrap();
    assert_eq!(first.counts().computed, 3, "{:?}", first.jobs);
    let rora::cache::Probe::Valid(entry) = store.probe(toys[1].key.hex()).unwrap() else {
        panic!("no committed toy entry");
    };
    let greeting = std::fs::read_to_string(entry.file("greeting.txt")).unwrap();
    assert_eq!(greeting.lines().count(), 2, "{greeting}");
    assert!(greeting.starts_with("hi there ("), "{greeting}");
    let second = exec.run(&jobs).unwrap();
    assert!(
        second
            .jobs
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Cached(_))),
        "{:?}",
        second.jobs
    );
}
