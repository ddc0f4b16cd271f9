use super::*;

#[test]
fn jsonl_log_and_console_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("cache")).unwrap();
    let fake = Fake {
        fail: vec!["eval@rank=8".into()],
        ..Fake::default()
    };
    let log = JsonlReporter::create_in(&layout::runs_dir(store.root())).unwrap();
    let log_path = log.path().to_path_buf();
    let buf = SharedBuf::default();
    let mut reporters = Reporters::new();
    reporters.push(log);
    reporters.push(ConsoleReporter::new(Box::new(buf.clone()), false));
    let options = ExecOptions {
        keep_going: true,
        until: vec![sel("eval")],
        ..Default::default()
    };
    Executor {
        store: &store,
        runner: &fake,
        reporters: &reporters,
        options,
    }
    .run(&graph())
    .unwrap();
    drop(reporters);

    let lines: Vec<serde_json::Value> = fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "job_done").count(), 5);
    let failed = lines.iter().find(|l| l["event"] == "job_failed").unwrap();
    assert_eq!(failed["job"]["label"], "eval@rank=8");
    assert_eq!(failed["error"], "eval@rank=8 diverged");
    assert_eq!(lines.last().unwrap()["counts"]["failed"], 1);

    let text = buf.text();
    let masked = regex::Regex::new(r"\d+\.\d+(s| B|KiB)")
        .unwrap()
        .replace_all(&text, "T");
    let lines: Vec<&str> = masked.lines().collect();
    assert_eq!(lines[0], "  running  model");
    assert_eq!(lines[1], "  done     model  T  7 B");
    assert!(
        lines.contains(&"  FAILED   eval@rank=8: eval@rank=8 diverged"),
        "{text}"
    );
    assert_eq!(*lines.last().unwrap(), "6 jobs: 5 computed, 1 failed in T");
}

#[test]
fn run_with_log_writes_the_event_log_into_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fake = Fake::default();
    let rec = Arc::new(Recorder::default());
    let extra: Vec<Box<dyn Reporter>> = vec![Box::new(rec.clone())];
    let session =
        run_with_log(&store, &fake, &graph(), ExecOptions::default(), None, extra).unwrap();
    assert!(session.summary.success());
    assert_eq!(session.log.parent().unwrap(), layout::runs_dir(tmp.path()));
    let log = fs::read_to_string(&session.log).unwrap();
    assert_eq!(
        log.lines().count(),
        rec.events().len(),
        "every event is logged"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"event\":\"job_done\""))
            .count(),
        7
    );
}

#[test]
fn console_with_bars_prints_result_lines_and_no_running_lines() {
    // stderr is not a terminal under `cargo test`, so the bars are hidden but fully driven.
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fake = Fake::default();
    let buf = SharedBuf::default();
    let mut reporters = Reporters::new();
    reporters.push(ConsoleReporter::new(Box::new(buf.clone()), true));
    Executor {
        store: &store,
        runner: &fake,
        reporters: &reporters,
        options: ExecOptions::default(),
    }
    .run(&graph())
    .unwrap();
    let text = buf.text();
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("  done     "))
            .count(),
        7,
        "{text}"
    );
    assert!(!text.contains("running"), "{text}");
}
