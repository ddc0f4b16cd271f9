//! Executor tests with fake runners (write files, fail, panic, sleep) over a small sweep-shaped
//! graph: model, data -> ft@rank=4|8 -> eval@rank=4|8 -> report. `runs.rs`: what runs and what
//! is committed; `reporters.rs`: console lines and the JSONL log.

mod reporters;
mod runs;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cache::{Entry, Probe, Store, layout};

use super::*;

fn job(id: usize, stage: &str, point: &[(&str, &str)], deps: &[usize]) -> JobSpec {
    let point: Vec<(String, String)> = point
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut j = JobSpec {
        id,
        stage: stage.to_string(),
        label: JobSpec::default_label(stage, &point),
        point,
        kind: stage.trim_end_matches(char::is_numeric).to_string(),
        key: String::new(),
        deps: deps.to_vec(),
        pipeline: Some("pipelines/t.kdl".into()),
        fingerprint: serde_json::json!({ "stage": stage }),
    };
    j.key = blake3::hash(j.label.as_bytes()).to_hex().to_string();
    j
}

fn graph() -> Vec<JobSpec> {
    vec![
        job(0, "model", &[], &[]),
        job(1, "data", &[], &[]),
        job(2, "ft", &[("rank", "4")], &[0, 1]),
        job(3, "ft", &[("rank", "8")], &[0, 1]),
        job(4, "eval", &[("rank", "4")], &[2]),
        job(5, "eval", &[("rank", "8")], &[3]),
        job(6, "report", &[], &[4, 5]),
    ]
}

/// Writes `out.txt` = `label(input1 + input2 ...)`; fails or panics for chosen labels.
#[derive(Default)]
struct Fake {
    calls: Mutex<BTreeMap<String, usize>>,
    fail: Vec<String>,
    panic: Vec<String>,
    sleep: Duration,
}

impl Fake {
    fn calls(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }
    fn calls_of(&self, label: &str) -> usize {
        self.calls.lock().unwrap().get(label).copied().unwrap_or(0)
    }
}

impl StageRunner for Fake {
    fn run(
        &self,
        job: &JobSpec,
        inputs: &[Entry],
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<serde_json::Value, StageError> {
        let label = job.label.clone();
        *self.calls.lock().unwrap().entry(label.clone()).or_default() += 1;
        progress.set_total(2, "steps");
        fs::write(out.join("partial.txt"), "half")?;
        std::thread::sleep(self.sleep);
        progress.set_position(1);
        if self.fail.contains(&label) {
            return Err(StageError::msg(format!("{label} diverged")));
        }
        if self.panic.contains(&label) {
            panic!("{label} hit a bug");
        }
        let ins: Result<Vec<String>, _> = inputs
            .iter()
            .map(|e| fs::read_to_string(e.file("out.txt")))
            .collect();
        fs::write(out.join("out.txt"), format!("{label}({})", ins?.join("+")))?;
        fs::remove_file(out.join("partial.txt"))?;
        progress.set_position(2);
        Ok(serde_json::json!({ "inputs": inputs.len() }))
    }
}

fn run(store: &Store, runner: &Fake, options: ExecOptions) -> (RunSummary, Vec<Event>) {
    let rec = Arc::new(Recorder::default());
    let mut reporters = Reporters::new();
    reporters.push(rec.clone());
    let summary = Executor {
        store,
        runner,
        reporters: &reporters,
        options,
    }
    .run(&graph())
    .unwrap();
    (summary, rec.events())
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
