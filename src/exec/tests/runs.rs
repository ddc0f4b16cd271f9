use super::*;

#[test]
fn second_run_is_all_hits_and_outputs_flow_along_deps() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fake = Fake::default();
    let (first, events) = run(&store, &fake, ExecOptions::default());
    assert_eq!(
        first.counts(),
        Counts {
            computed: 7,
            ..Counts::default()
        }
    );
    assert_eq!(first.exit_code(), 0);
    let report = first.outcome("report").unwrap().entry().unwrap();
    assert_eq!(
        fs::read_to_string(report.file("out.txt")).unwrap(),
        "report(eval@rank=4(ft@rank=4(model()+data()))+eval@rank=8(ft@rank=8(model()+data())))"
    );
    assert_eq!(report.manifest().meta["outputs"]["inputs"], 2);
    assert_eq!(report.manifest().meta["fingerprint"]["stage"], "report");
    let progress = events
        .iter()
        .filter(|e| matches!(e, Event::JobProgress { .. }))
        .count();
    assert_eq!(progress, 7 * 3, "set_total + 2 positions per job");

    let (second, _) = run(&store, &fake, ExecOptions::default());
    assert_eq!(
        second.counts(),
        Counts {
            cached: 7,
            ..Counts::default()
        }
    );
    assert_eq!(fake.calls(), 7, "nothing recomputed");
}

#[test]
fn a_failing_job_commits_nothing_and_stops_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fake = Fake {
        fail: vec!["ft@rank=8".into()],
        ..Fake::default()
    };
    let (s, _) = run(&store, &fake, ExecOptions::default());
    assert_eq!(s.exit_code(), 3);
    let c = s.counts();
    assert_eq!((c.computed, c.failed, c.not_run), (3, 1, 3), "{c:?}");
    let ft8 = &graph()[3];
    assert!(matches!(store.probe(&ft8.key).unwrap(), Probe::Absent));
    assert_eq!(
        fs::read_dir(layout::staging_root(tmp.path()))
            .unwrap()
            .count(),
        0
    );
    match s.outcome("ft@rank=8").unwrap() {
        Outcome::Failed { error } => assert_eq!(error, "ft@rank=8 diverged"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn keep_going_runs_independent_jobs_and_blocks_dependents() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fake = Fake {
        panic: vec!["ft@rank=8".into()],
        ..Fake::default()
    };
    let (s, _) = run(
        &store,
        &fake,
        ExecOptions {
            keep_going: true,
            ..Default::default()
        },
    );
    assert_eq!(s.exit_code(), 3);
    let c = s.counts();
    assert_eq!((c.computed, c.failed, c.blocked), (4, 1, 2), "{c:?}");
    assert!(matches!(
        s.outcome("eval@rank=4"),
        Some(Outcome::Computed { .. })
    ));
    assert!(
        matches!(s.outcome("eval@rank=8"), Some(Outcome::Blocked { failed_dep }) if failed_dep == "ft@rank=8")
    );
    assert!(
        matches!(s.outcome("ft@rank=8"), Some(Outcome::Failed { error }) if error.contains("stage panicked: ft@rank=8 hit a bug"))
    );

    // Fixed: the next run computes only what is missing.
    let fixed = Fake::default();
    let (s, _) = run(&store, &fixed, ExecOptions::default());
    assert_eq!(
        s.counts(),
        Counts {
            cached: 4,
            computed: 3,
            ..Counts::default()
        }
    );
}

#[test]
fn force_recomputes_only_the_selected_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fake = Fake::default();
    run(&store, &fake, ExecOptions::default());
    let (s, _) = run(
        &store,
        &fake,
        ExecOptions {
            force: vec![sel("ft@rank=4")],
            ..Default::default()
        },
    );
    assert_eq!(
        s.counts(),
        Counts {
            cached: 6,
            computed: 1,
            ..Counts::default()
        }
    );
    assert_eq!(fake.calls_of("ft@rank=4"), 2);
    // `ft` without a point forces both ranks.
    let (s, _) = run(
        &store,
        &fake,
        ExecOptions {
            force: vec![sel("ft")],
            ..Default::default()
        },
    );
    assert_eq!(s.counts().computed, 2);
}

#[test]
fn until_runs_a_stage_and_its_ancestors_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fake = Fake::default();
    let (s, _) = run(
        &store,
        &fake,
        ExecOptions {
            until: vec![sel("ft@rank=8")],
            ..Default::default()
        },
    );
    let labels: Vec<&str> = s.jobs.iter().map(|(j, _)| j.label.as_str()).collect();
    assert_eq!(labels, ["model", "data", "ft@rank=8"]);
    assert_eq!(fake.calls(), 3);
}

#[test]
fn only_runs_just_the_selection_and_needs_cached_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fake = Fake::default();
    let (s, _) = run(
        &store,
        &fake,
        ExecOptions {
            only: vec![sel("eval@rank=4")],
            ..Default::default()
        },
    );
    assert_eq!(s.jobs.len(), 1);
    assert!(
        matches!(s.outcome("eval@rank=4"), Some(Outcome::Failed { error }) if error.contains("input ft@rank=4 is not in the cache"))
    );
    assert_eq!(fake.calls(), 0);
    run(
        &store,
        &fake,
        ExecOptions {
            until: vec![sel("ft")],
            ..Default::default()
        },
    );
    let (s, _) = run(
        &store,
        &fake,
        ExecOptions {
            only: vec![sel("eval@rank=4")],
            ..Default::default()
        },
    );
    assert_eq!(
        s.counts(),
        Counts {
            computed: 1,
            ..Counts::default()
        }
    );
}

#[test]
fn dry_run_computes_and_locks_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fake = Fake::default();
    let (s, events) = run(
        &store,
        &fake,
        ExecOptions {
            dry_run: true,
            ..Default::default()
        },
    );
    assert_eq!(
        s.counts(),
        Counts {
            would_run: 7,
            ..Counts::default()
        }
    );
    assert_eq!(fake.calls(), 0);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::JobPlanned { cached: false, .. }))
            .count(),
        7
    );
    run(
        &store,
        &fake,
        ExecOptions {
            until: vec![sel("ft@rank=4")],
            ..Default::default()
        },
    );
    assert_eq!(fake.calls(), 3);
    let (s, _) = run(
        &store,
        &fake,
        ExecOptions {
            dry_run: true,
            force: vec![sel("data")],
            ..Default::default()
        },
    );
    // model and ft@rank=4 are cached; data is forced; the rest was never computed.
    assert_eq!(
        s.counts(),
        Counts {
            cached: 2,
            would_run: 5,
            ..Counts::default()
        }
    );
    assert!(matches!(s.outcome("data"), Some(Outcome::WouldRun)));
    assert_eq!(fake.calls(), 3);
}

#[test]
fn bad_selectors_and_cycles_are_errors_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fake = Fake::default();
    let reporters = Reporters::new();
    let exec = |options| Executor {
        store: &store,
        runner: &fake,
        reporters: &reporters,
        options,
    };
    let err = exec(ExecOptions {
        only: vec![sel("evl")],
        ..Default::default()
    })
    .run(&graph())
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--only evl: matches no job; did you mean `eval`?"
    );
    let err = exec(ExecOptions {
        force: vec![sel("ft@rank=16")],
        ..Default::default()
    })
    .run(&graph())
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--force ft@rank=16: matches no job; the jobs of `ft` are: ft@rank=4 ft@rank=8"
    );
    assert!(Selector::parse("ft@rank").is_err());
    let mut cyclic = graph();
    cyclic[0].deps = vec![6];
    let err = exec(ExecOptions::default()).run(&cyclic).unwrap_err();
    assert_eq!(
        err.to_string(),
        "job graph has a cycle: model -> report -> eval@rank=4 -> ft@rank=4 -> model"
    );
    assert_eq!(fake.calls(), 0);
}

#[test]
fn two_concurrent_runs_on_one_store_compute_each_key_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fake = Fake {
        sleep: Duration::from_millis(30),
        ..Fake::default()
    };
    let summaries: Vec<RunSummary> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| run(&store, &fake, ExecOptions::default()).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(fake.calls(), 7, "each key computed once across both runs");
    assert!(summaries.iter().all(RunSummary::success));
    let computed: usize = summaries.iter().map(|s| s.counts().computed).sum();
    assert_eq!(computed, 7);
}

#[test]
fn a_corrupt_entry_is_reported_and_recomputed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fake = Fake::default();
    run(&store, &fake, ExecOptions::default());
    let ft4 = &graph()[2];
    fs::write(layout::out_dir(tmp.path(), &ft4.key).join("out.txt"), "tr").unwrap();
    let (s, events) = run(&store, &fake, ExecOptions::default());
    assert_eq!(
        s.counts(),
        Counts {
            cached: 6,
            computed: 1,
            ..Counts::default()
        }
    );
    assert_eq!(fake.calls_of("ft@rank=4"), 2);
    let corrupt: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::JobCorrupt { .. }))
        .collect();
    assert_eq!(corrupt.len(), 1);
    assert!(
        matches!(corrupt[0], Event::JobCorrupt { job, defect } if job.label == "ft@rank=4" && defect.contains("out/out.txt has 2 bytes"))
    );
}

/// Counts steps in a checkpoint under the key's resume dir; fails once after step 2.
struct Resumable {
    root: std::path::PathBuf,
    fail_at: Mutex<Option<u32>>,
}

impl StageRunner for Resumable {
    fn run(
        &self,
        job: &JobSpec,
        _: &[Entry],
        out: &Path,
        _: &dyn Progress,
    ) -> Result<serde_json::Value, StageError> {
        let dir = layout::resume_dir(&self.root, &job.key);
        fs::create_dir_all(&dir)?;
        let ckpt = dir.join("step");
        let start: u32 = fs::read_to_string(&ckpt)
            .map(|s| s.parse().unwrap_or(0))
            .unwrap_or(0);
        for step in start..4 {
            if self
                .fail_at
                .lock()
                .unwrap()
                .take_if(|f| *f == step)
                .is_some()
            {
                return Err(StageError::msg(format!("killed at step {step}")));
            }
            fs::write(&ckpt, (step + 1).to_string())?;
        }
        fs::write(out.join("out.txt"), format!("resumed from {start}"))?;
        Ok(serde_json::Value::Null)
    }
}

#[test]
fn a_runner_resumes_from_its_checkpoint_and_commit_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let runner = Resumable {
        root: tmp.path().to_path_buf(),
        fail_at: Mutex::new(Some(2)),
    };
    let jobs = vec![job(0, "train", &[], &[])];
    let reporters = Reporters::new();
    let exec = Executor {
        store: &store,
        runner: &runner,
        reporters: &reporters,
        options: ExecOptions::default(),
    };
    let first = exec.run(&jobs).unwrap();
    assert!(
        matches!(first.outcome("train"), Some(Outcome::Failed { error }) if error == "killed at step 2")
    );
    let second = exec.run(&jobs).unwrap();
    let entry = second.outcome("train").unwrap().entry().unwrap();
    assert_eq!(
        fs::read_to_string(entry.file("out.txt")).unwrap(),
        "resumed from 2"
    );
    assert!(!layout::resume_dir(tmp.path(), &jobs[0].key).exists());
}

/// A key another holder is computing does not stall the run: the executor takes every job that
/// does not depend on it first, then waits, and takes the other holder's entry.
#[test]
fn a_busy_key_waits_while_independent_jobs_run() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let g = graph();
    let (ft4, eval8) = (g[2].clone(), g[5].clone());
    // Another holder reserves ft@rank=4 and commits it only once eval@rank=8 (which does not
    // depend on it) is in the store.
    let held = match store.lookup(&ft4.key).unwrap() {
        crate::cache::Lookup::Miss(r) => r,
        crate::cache::Lookup::Hit(_) => panic!("fresh store"),
    };
    let fake = Fake::default();
    let (summary, events) = std::thread::scope(|s| {
        let holder = s.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !matches!(store.probe(&eval8.key), Ok(Probe::Valid(_))) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "eval@rank=8 never ran"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            fs::write(held.out_dir().join("out.txt"), "ft@rank=4(held)").unwrap();
            held.commit(crate::cache::CommitInfo {
                stage: ft4.label.clone(),
                kind: ft4.kind.clone(),
                pipeline: None,
                meta: serde_json::Value::Null,
            })
            .unwrap();
        });
        let r = run(&store, &fake, ExecOptions::default());
        holder.join().unwrap();
        r
    });
    assert!(summary.success(), "{:?}", summary.jobs);
    assert_eq!(
        fake.calls_of("ft@rank=4"),
        0,
        "the other holder computed it"
    );
    assert!(matches!(
        summary.outcome("ft@rank=4"),
        Some(Outcome::Cached(_))
    ));
    assert_eq!(fake.calls(), 6);
    let pos = |want: &dyn Fn(&Event) -> bool| events.iter().position(want).unwrap();
    let waiting = pos(&|e| matches!(e, Event::JobWaiting { job } if job.label == "ft@rank=4"));
    let eval8_done =
        pos(&|e| matches!(e, Event::JobDone { job, .. } if job.label == "eval@rank=8"));
    assert!(
        waiting < eval8_done,
        "eval@rank=8 ran while ft@rank=4 was busy"
    );
    let report = summary.outcome("report").unwrap().entry().unwrap();
    assert!(
        fs::read_to_string(report.file("out.txt"))
            .unwrap()
            .contains("eval@rank=4(ft@rank=4(held))"),
    );
}
