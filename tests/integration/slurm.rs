//! `rora run --executor slurm` against a real single-node Slurm (`scripts/slurm-local.sh start`,
//! which `.ci/run` calls): the same report files as the local executor, a rerun submits nothing,
//! an added rank submits only its branch, a failing job's log tail, SIGINT to the head leaves no
//! job in the queue, `scancel` of a running train job and a rerun that resumes to the same
//! weights, two heads on overlapping sweeps. Skipped, saying so, where no Slurm answers. The dry
//! run (`rora plan --executor slurm`) needs no Slurm.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{run_logs, text, walk};

/// `SLURM_CONF` of a cluster that answers `sinfo`, or `None` (the test is skipped).
fn slurm() -> Option<String> {
    let conf = std::env::var("SLURM_CONF").ok().or_else(|| {
        let p = "/tmp/rora-slurm/slurm.conf";
        Path::new(p).is_file().then(|| p.to_string())
    });
    let Some(conf) = conf else {
        eprintln!("skipped: no Slurm (run `scripts/slurm-local.sh start` and export SLURM_CONF)");
        return None;
    };
    let ok = Command::new("sinfo")
        .arg("-h")
        .env("SLURM_CONF", &conf)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "skipped: Slurm at {conf} does not answer `sinfo` (scripts/slurm-local.sh start)"
        );
        return None;
    }
    Some(conf)
}

/// A profile for the 2-core test cluster: one CPU per job, a fast poll.
fn profile(dir: &Path) -> PathBuf {
    let p = dir.join("slurm.kdl");
    std::fs::write(
        &p,
        "cpus 1\nlight-cpus 1\nmem \"2G\"\nlight-mem \"1G\"\ntime \"20m\"\npoll \"200ms\"\n",
    )
    .unwrap();
    p
}

/// A tiny sweep: model, data, tokens, then per rank adapter, train, merge, eval; one report.
fn pipeline(dir: &Path, name: &str, ranks: &str, steps: u32, data: Option<&Path>) -> PathBuf {
    let shipped = crate::root().join("datasets/commonsense");
    let files = match data {
        Some(d) => format!("\"{}\"", d.display()),
        None => format!(
            "\"{0}/boolq.train.jsonl\" \"{0}/piqa.train.jsonl\"",
            shipped.display()
        ),
    };
    let text = format!(
        r#"
sweep rank {ranks}
model "tiny" {{
    random layers=1 hidden=32 heads=2 kv-heads=1 ffn=64 seed=3
}}
data "cs" {{
    files {files}
    template "llm-adapters"
    max-len 96
    limit 64
}}
adapter "ad" model="tiny" {{
    scaling "rora"
    rank (sweep)"rank"
    alpha 8
    targets "q_proj" "v_proj"
}}
train "ft" adapter="ad" data="cs" {{
    steps {steps}
    batch 4 micro=2
    lr 1e-3
    checkpoint-every 2
    seed 7
}}
merge "merged" from="ft"
eval "ev" model="merged" {{
    tasks "boolq"
    protocol "loglik"
    limit 8
    dir "{shipped}"
}}
report "summary" from="ev" {{
    table
}}
"#,
        shipped = shipped.display()
    );
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn cmd(args: &[&str], cache: &Path, conf: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rora"));
    c.args(args)
        .env("RORA_CACHE_DIR", cache)
        .env("NO_COLOR", "1")
        .env("RAYON_NUM_THREADS", "1");
    if let Some(conf) = conf {
        c.env("SLURM_CONF", conf);
    }
    c
}

/// `rora run P --executor slurm` with the test profile.
fn slurm_cmd(p: &Path, cache: &Path, conf: &str, extra: &[&str]) -> Command {
    let prof = profile(p.parent().unwrap());
    let mut args = vec![
        "run",
        p.to_str().unwrap(),
        "--executor",
        "slurm",
        "--slurm-profile",
        prof.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cmd(&args, cache, Some(conf))
}

fn slurm_run(p: &Path, cache: &Path, conf: &str, extra: &[&str]) -> Output {
    slurm_cmd(p, cache, conf, extra).output().unwrap()
}

fn spawn_slurm_run(p: &Path, cache: &Path, conf: &str) -> Child {
    slurm_cmd(p, cache, conf, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The events of the head logs (those with `job_submitted` or `run_interrupted` events, or no
/// job ran), as opposed to the workers' logs.
fn head_events(cache: &Path, kind: &str) -> Vec<serde_json::Value> {
    run_logs(cache)
        .into_iter()
        .flatten()
        .filter(|e| e["event"] == kind)
        .collect()
}

/// Report table files of the report entry in `cache`.
/// A report file with its training wall-clock times taken out (the one thing in a report that
/// differs between two executions of the same jobs): the `Train (s)` column of `table.md`, the
/// `train_seconds` column of `table.csv` and `train_seconds` fields of JSON files.
fn without_times(name: &str, bytes: Vec<u8>) -> Vec<u8> {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("train_seconds");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let text = || String::from_utf8(bytes.clone()).unwrap();
    if name.ends_with(".json") {
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        strip(&mut v);
        return serde_json::to_vec(&v).unwrap();
    }
    if name.ends_with("table.csv") {
        let t = text();
        let col = t
            .lines()
            .next()
            .unwrap()
            .split(',')
            .position(|c| c == "train_seconds");
        return t
            .lines()
            .map(|l| {
                let mut cells: Vec<&str> = l.split(',').collect();
                if let Some(c) = col.filter(|&c| c < cells.len()) {
                    cells.remove(c);
                }
                cells.join(",") + "\n"
            })
            .collect::<String>()
            .into_bytes();
    }
    if name.ends_with("table.md") {
        let mut timed = false;
        return text()
            .lines()
            .map(|l| {
                if !l.starts_with('|') {
                    timed = false;
                    return format!("{l}\n");
                }
                timed |= l.ends_with("| Train (s) |");
                match (timed, l.trim_end_matches(" |").rsplit_once(" | ")) {
                    (true, Some((head, _))) => format!("{head} |\n"),
                    _ => format!("{l}\n"),
                }
            })
            .collect::<String>()
            .into_bytes();
    }
    bytes
}

fn report_files(cache: &Path) -> Vec<(String, Vec<u8>)> {
    walk(&cache.join("v1/entries"))
        .into_iter()
        .filter(|f| {
            let n = f.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with("table.") && f.parent().is_some_and(|d| d.ends_with("out"))
        })
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            let bytes = without_times(&name, std::fs::read(&f).unwrap());
            (name, bytes)
        })
        .collect()
}

/// Jobs of this run tag still active in the queue.
fn active_jobs(conf: &str, name: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-n", name, "-o", "%i|%T"])
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Every file of the report entry (`kind` report) in `cache`: name and bytes.
fn report_entry_files(cache: &Path) -> Vec<(String, Vec<u8>)> {
    let manifest = walk(&cache.join("v1/entries"))
        .into_iter()
        .filter(|f| f.ends_with("manifest.json"))
        .find(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("\"kind\": \"report\"")
        })
        .expect("a report entry");
    let out = manifest.parent().unwrap().join("out");
    walk(&out)
        .into_iter()
        .map(|f| {
            let name = f.strip_prefix(&out).unwrap().display().to_string();
            let bytes = without_times(&name, std::fs::read(&f).unwrap());
            (name, bytes)
        })
        .collect()
}

#[test]
fn the_quickstart_through_slurm_writes_the_same_report_files_and_a_rerun_submits_nothing() {
    let Some(conf) = slurm() else { return };
    let _shared = node_shared();
    let dir = tempfile::tempdir().unwrap();
    let prof = profile(dir.path());
    let local_cache = dir.path().join("local");
    let local = cmd(&["run"], &local_cache, None).output().unwrap();
    assert_eq!(local.status.code(), Some(0), "{}", text(&local));
    let cache = dir.path().join("slurm");
    let args = [
        "run",
        "--executor",
        "slurm",
        "--slurm-profile",
        prof.to_str().unwrap(),
    ];
    let first = cmd(&args, &cache, Some(&conf)).output().unwrap();
    let out = text(&first);
    assert_eq!(first.status.code(), Some(0), "{out}");
    assert!(out.contains("28 jobs: 28 computed"), "{out}");
    let (a, b) = (report_entry_files(&local_cache), report_entry_files(&cache));
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"table.md") && names.iter().any(|n| n.ends_with(".png")),
        "{names:?}"
    );
    assert!(
        a == b,
        "report files differ between the local and the Slurm executor: {names:?}"
    );
    let second = cmd(&args, &cache, Some(&conf)).output().unwrap();
    let out2 = text(&second);
    assert_eq!(second.status.code(), Some(0), "{out2}");
    assert!(out2.contains("28 jobs: 28 cached"), "{out2}");
    assert!(!out2.contains("submitted"), "{out2}");
}

#[test]
fn slurm_matches_local_reruns_submit_nothing_and_a_new_rank_submits_its_branch() {
    let Some(conf) = slurm() else { return };
    let _shared = node_shared();
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), "sweep.kdl", "2 4", 4, None);

    let local_cache = dir.path().join("local");
    let local = cmd(&["run", p.to_str().unwrap()], &local_cache, None)
        .output()
        .unwrap();
    assert_eq!(local.status.code(), Some(0), "{}", text(&local));

    let cache = dir.path().join("slurm");
    let first = slurm_run(&p, &cache, &conf, &[]);
    let out = text(&first);
    assert_eq!(first.status.code(), Some(0), "{out}");
    assert!(out.contains("12 jobs: 12 computed"), "{out}");
    assert_eq!(head_events(&cache, "job_submitted").len(), 12, "{out}");
    let (a, b) = (report_files(&local_cache), report_files(&cache));
    assert!(!a.is_empty());
    assert_eq!(
        a, b,
        "report files differ between the local and the Slurm executor"
    );

    // Everything is in the store: nothing is submitted.
    let second = slurm_run(&p, &cache, &conf, &[]);
    let out2 = text(&second);
    assert_eq!(second.status.code(), Some(0), "{out2}");
    assert!(out2.contains("12 jobs: 12 cached"), "{out2}");
    assert!(!out2.contains("submitted"), "{out2}");

    // --force recomputes one job through Slurm; it is done only once its new entry is committed.
    let forced = slurm_run(&p, &cache, &conf, &["--force", "ft@rank=2"]);
    let outf = text(&forced);
    assert_eq!(forced.status.code(), Some(0), "{outf}");
    assert!(outf.contains("12 jobs: 11 cached, 1 computed"), "{outf}");
    assert!(outf.contains("submitted ft@rank=2"), "{outf}");
    let worker_done = run_logs(&cache)
        .iter()
        .filter(|log| !log.iter().any(|e| e["event"] == "job_submitted"))
        .flatten()
        .filter(|e| e["event"] == "job_done" && e["job"]["label"] == "ft@rank=2")
        .count();
    assert_eq!(worker_done, 2, "the forced job was not computed again");

    // A third rank: its adapter, train, merge, eval and the report are submitted; nothing else.
    let p3 = pipeline(dir.path(), "sweep.kdl", "2 4 8", 4, None);
    let third = slurm_run(&p3, &cache, &conf, &[]);
    let out3 = text(&third);
    assert_eq!(third.status.code(), Some(0), "{out3}");
    assert!(out3.contains("16 jobs: 11 cached, 5 computed"), "{out3}");
    let submitted: Vec<String> = out3
        .lines()
        .filter(|l| l.trim_start().starts_with("submitted"))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    let mut want = vec![
        "ad@rank=8",
        "ev@rank=8",
        "ft@rank=8",
        "merged@rank=8",
        "summary",
    ];
    want.sort();
    let mut got = submitted.clone();
    got.sort();
    assert_eq!(got, want, "{out3}");
    let verify = cmd(&["cache", "verify"], &cache, None).output().unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[test]
fn a_failing_slurm_job_exits_3_with_its_state_id_and_log_tail() {
    let Some(conf) = slurm() else { return };
    let _shared = node_shared();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.train.jsonl");
    std::fs::write(
        &bad,
        "{\"instruction\": \"q\", \"output\": \"a\"}\nthis is not json\n",
    )
    .unwrap();
    let p = pipeline(dir.path(), "bad.kdl", "2", 2, Some(&bad));
    let cache = dir.path().join("cache");
    let out = slurm_run(&p, &cache, &conf, &["--keep-going"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("FAILED   cs: Slurm job"), "{t}");
    assert!(t.contains("ended FAILED"), "{t}");
    // the tail of the job's own log, with the worker's error naming the file and line
    assert!(t.contains("    | "), "{t}");
    assert!(t.contains("broken.train.jsonl"), "{t}");
    assert!(t.contains("blocked"), "{t}");
    // the model and adapter do not depend on the data: --keep-going computed them
    assert!(t.contains("done     tiny"), "{t}");
}

#[test]
fn sigint_to_the_head_cancels_every_job_it_submitted() {
    let Some(conf) = slurm() else { return };
    let _shared = node_shared();
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), "long.kdl", "2 4", 400, None);
    let cache = dir.path().join("cache");
    let head = spawn_slurm_run(&p, &cache, &conf);
    // Wait until a train job is submitted and running.
    let running = wait_until(Duration::from_secs(120), || {
        head_events(&cache, "job_queue_state")
            .iter()
            .any(|e| e["job"]["kind"] == "train" && e["state"] == "RUNNING")
    });
    assert!(running, "no train job started running");
    let name = head_events(&cache, "job_submitted")
        .first()
        .and_then(|_| {
            walk(&cache.join("runs/slurm")).first().and_then(|f| {
                f.parent()?
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
            })
        })
        .expect("the run's log dir");
    assert!(!active_jobs(&conf, &name).is_empty());
    let _ = Command::new("kill")
        .args(["-INT", &head.id().to_string()])
        .status();
    let out = head.wait_with_output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(130), "{t}");
    assert!(t.contains("interrupted: cancelled"), "{t}");
    assert!(t.contains("none is left in the queue"), "{t}");
    assert!(
        active_jobs(&conf, &name).is_empty(),
        "{:?}",
        active_jobs(&conf, &name)
    );
    // nothing half-written became an entry
    let verify = cmd(&["cache", "verify"], &cache, None).output().unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

/// The adapter weights of every train entry, by label.
fn adapters(cache: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = walk(&cache.join("v1/entries"))
        .into_iter()
        .filter(|f| f.ends_with("adapter_model.safetensors"))
        .map(|f| (f.clone(), std::fs::read(&f).unwrap()))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.into_iter().map(|(_, b)| b).collect()
}

#[test]
fn scancel_of_a_running_train_job_then_a_rerun_resumes_to_the_same_weights() {
    let Some(conf) = slurm() else { return };
    let _shared = node_shared();
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), "resume.kdl", "2", 60, None);
    let cache = dir.path().join("cache");
    let head = spawn_slurm_run(&p, &cache, &conf);
    // Cancel the train job once it has written a checkpoint.
    let mut cancelled = None;
    let ok = wait_until(Duration::from_secs(180), || {
        let has_ckpt = walk(&cache.join("v1/resume"))
            .iter()
            .any(|f| f.to_string_lossy().contains("step-"));
        if !has_ckpt {
            return false;
        }
        let sub = head_events(&cache, "job_submitted");
        let Some(id) = sub
            .iter()
            .find(|e| e["job"]["kind"] == "train")
            .and_then(|e| e["slurm_id"].as_str())
        else {
            return false;
        };
        let _ = Command::new("scancel")
            .arg(id)
            .env("SLURM_CONF", &conf)
            .status();
        cancelled = Some(id.to_string());
        true
    });
    assert!(ok, "no checkpoint before the train job ended");
    let out = head.wait_with_output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    let id = cancelled.unwrap();
    assert!(
        t.contains(&format!("Slurm job {id} ended CANCELLED")),
        "{t}"
    );

    let rerun = slurm_run(&p, &cache, &conf, &[]);
    let t2 = text(&rerun);
    assert_eq!(rerun.status.code(), Some(0), "{t2}");
    let resumed = crate::support::some_train_resumed(&cache);
    assert!(resumed, "the train job did not resume from its checkpoint");

    // The same pipeline uninterrupted, locally: bit-identical adapter weights.
    let local_cache = dir.path().join("local");
    let local = cmd(&["run", p.to_str().unwrap()], &local_cache, None)
        .output()
        .unwrap();
    assert_eq!(local.status.code(), Some(0), "{}", text(&local));
    let (a, b) = (adapters(&local_cache), adapters(&cache));
    assert!(!a.is_empty());
    assert!(a == b, "resumed weights differ from an uninterrupted run");
}

/// Tests that take the node down must not run beside the other Slurm tests.
static NODE: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn node_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    NODE.read().unwrap_or_else(|e| e.into_inner())
}

fn scontrol(conf: &str, args: &[&str]) {
    let out = Command::new("scontrol")
        .args(args)
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "scontrol {args:?}: {}", text(&out));
}

#[test]
fn a_node_failure_is_retried_and_the_train_job_resumes() {
    let Some(conf) = slurm() else { return };
    let _alone = NODE.write().unwrap_or_else(|e| e.into_inner());
    let node = String::from_utf8(Command::new("hostname").arg("-s").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), "nodefail.kdl", "2", 60, None);
    let cache = dir.path().join("cache");
    // --no-requeue: Slurm itself would requeue a batch job on a node failure; here the head does.
    let head = slurm_cmd(
        &p,
        &cache,
        &conf,
        &["--sbatch=--no-requeue", "--retries", "1"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let ok = wait_until(Duration::from_secs(180), || {
        walk(&cache.join("v1/resume"))
            .iter()
            .any(|f| f.to_string_lossy().contains("step-"))
    });
    assert!(ok, "no checkpoint before the train job ended");
    scontrol(
        &conf,
        &[
            "update",
            &format!("nodename={node}"),
            "state=down",
            "reason=rora-test",
        ],
    );
    let failed = wait_until(Duration::from_secs(60), || {
        head_events(&cache, "job_queue_state")
            .iter()
            .any(|e| e["state"] == "NODE_FAIL")
    });
    // Back in service (slurmd's next registration may have done it already: ReturnToService=2).
    let _ = Command::new("scontrol")
        .args(["update", &format!("nodename={node}"), "state=resume"])
        .env("SLURM_CONF", &conf)
        .output();
    assert!(failed, "the train job did not end NODE_FAIL");
    let out = head.wait_with_output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("(attempt 2)"), "{t}");
    let resumed = crate::support::some_train_resumed(&cache);
    assert!(
        resumed,
        "the retried train job did not resume from its checkpoint"
    );
}

#[test]
fn two_heads_on_overlapping_sweeps_compute_each_key_once() {
    let Some(conf) = slurm() else { return };
    let _shared = node_shared();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let pa = pipeline(dir.path(), "a.kdl", "2 4", 4, None);
    let pb = pipeline(dir.path(), "b.kdl", "4 8", 4, None);
    let ha = spawn_slurm_run(&pa, &cache, &conf);
    let hb = spawn_slurm_run(&pb, &cache, &conf);
    let (oa, ob) = (
        ha.wait_with_output().unwrap(),
        hb.wait_with_output().unwrap(),
    );
    assert_eq!(oa.status.code(), Some(0), "{}", text(&oa));
    assert_eq!(ob.status.code(), Some(0), "{}", text(&ob));
    // Every worker that computed a key says so in its own event log: at most once per key.
    let mut done: Vec<String> = vec![];
    for log in run_logs(&cache) {
        let is_head = log.iter().any(|e| e["event"] == "job_submitted");
        if is_head {
            continue;
        }
        for e in log.iter().filter(|e| e["event"] == "job_done") {
            done.push(e["job"]["key"].as_str().unwrap().to_string());
        }
    }
    let n = done.len();
    done.sort();
    done.dedup();
    assert_eq!(n, done.len(), "a key was computed twice");
    // a: 12 jobs, b: 12 jobs, shared: model, data, tokens, rank 4's 4 jobs -> 17 distinct keys
    assert_eq!(n, 17, "{}\n{}", text(&oa), text(&ob));
    // Both heads account for all their jobs. (Which head reports a shared key as computed is a
    // race when both submit it at once: the second worker finds the entry and exits.)
    for o in [&oa, &ob] {
        assert!(text(o).contains("12 jobs: "), "{}", text(o));
        assert!(!text(o).contains("failed"), "{}", text(o));
    }
}

#[test]
fn plan_prints_the_sbatch_line_of_each_job_and_a_cuda_train_job_asks_for_a_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let plain = pipeline(dir.path(), "gpu.kdl", "8", 4, None);
    let keys = |p: &Path| -> Vec<String> {
        let o = cmd(
            &["plan", p.to_str().unwrap(), "--format", "json"],
            &dir.path().join("c"),
            None,
        )
        .output()
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["key"].as_str().unwrap().to_string())
            .collect()
    };
    let before = keys(&plain);
    // the stage's own `resources` (not part of its key)
    let src = std::fs::read_to_string(&plain).unwrap().replace(
        "checkpoint-every 2",
        "checkpoint-every 2\n    resources time=\"2h\" cpus=2",
    );
    let p = dir.path().join("gpu-res.kdl");
    std::fs::write(&p, src).unwrap();
    assert_eq!(before, keys(&p), "resources changed a key");
    let cache = dir.path().join("cache");
    let out = cmd(
        &[
            "plan",
            p.to_str().unwrap(),
            "--executor",
            "slurm",
            "--device",
            "cuda",
            "--partition",
            "gpu",
            "--resources",
            "ft:time=6h",
        ],
        &cache,
        None,
    )
    .output()
    .unwrap();
    let t = text(&out);
    // no GPU here: --device cuda is refused (exit 2) unless the plan is only printed for Slurm
    assert_eq!(out.status.code(), Some(0), "{t}");
    let line = |label: &str| -> String {
        let mut lines = t.lines();
        while let Some(l) = lines.next() {
            if l.trim_end().ends_with(&format!("  {label}")) {
                return lines.next().unwrap().to_string();
            }
        }
        panic!("no sbatch line for {label}:\n{t}")
    };
    let ft = line("ft@rank=8");
    assert!(ft.contains("sbatch --parsable"), "{ft}");
    assert!(ft.contains("--gres=gpu:1"), "{ft}");
    // --resources wins over the pipeline's time; the pipeline's cpus stay
    assert!(ft.contains("--time=360"), "{ft}");
    assert!(ft.contains("--cpus-per-task=2"), "{ft}");
    let merged = line("merged@rank=8");
    assert!(merged.contains("--cpus-per-task=4"), "{merged}");
    assert!(merged.contains("--gres=gpu:1"), "{merged}");
    assert!(ft.contains("--partition=gpu"), "{ft}");
    assert!(ft.contains(" job "), "{ft}");
    assert!(ft.contains("--device cuda"), "{ft}");
    let data = line("cs");
    assert!(!data.contains("--gres"), "{data}");
    assert!(data.contains("--cpus-per-task=1"), "{data}");

    // A dry run of the Slurm executor on a machine without a GPU: what would run, no error.
    let dry = cmd(
        &[
            "run",
            p.to_str().unwrap(),
            "--executor",
            "slurm",
            "--device",
            "cuda",
            "--dry-run",
        ],
        &cache,
        None,
    )
    .output()
    .unwrap();
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(text(&dry).contains("to run"), "{}", text(&dry));
}
