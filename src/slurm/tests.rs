//! Unit tests of the Slurm executor's pure parts: settings and profiles, resources, the sbatch
//! line, squeue parsing, and the store check. The head itself runs against a real single-node
//! Slurm in `tests/integration/slurm.rs`.

use std::path::{Path, PathBuf};

use super::command::{Submission, parse_squeue, sbatch_args, shell_line};
use super::resources::{JobNeeds, resources};
use super::settings::{GpuFlag, Override, Settings, Target, parse_minutes};

const GIB: u64 = 1 << 30;

fn needs(kind: &str, accelerated: bool, cuda: bool, memory: Option<u64>) -> JobNeeds {
    JobNeeds {
        stage: "ft".into(),
        kind: kind.into(),
        accelerated,
        cuda,
        memory,
        flops: None,
        declared: None,
    }
}

fn sub(s: &Settings, n: &JobNeeds) -> Submission {
    Submission {
        name: "rora-0123abcd".into(),
        store: "0123456789ab".into(),
        key: "ab".repeat(32),
        log: PathBuf::from("/store/runs/slurm/rora-0123abcd/ft@rank=8.%j.log"),
        resources: resources(s, n),
        command: vec![
            "/opt/rora bin/rora".into(),
            "job".into(),
            "--key".into(),
            "ab".repeat(32),
        ],
    }
}

#[test]
fn a_cuda_train_job_asks_for_a_gpu_and_its_estimate_plus_margin() {
    let s = Settings::default();
    // 40 GiB estimate * 1.25 + 4 GiB for the process = 54 GiB = 55296 MiB
    let a = sbatch_args(&s, &sub(&s, &needs("train", true, true, Some(40 * GIB))));
    assert!(a.contains(&"--gres=gpu:1".to_string()), "{a:?}");
    assert!(a.contains(&"--mem=55296M".to_string()), "{a:?}");
    assert!(a.contains(&"--cpus-per-task=4".to_string()), "{a:?}");
    assert!(
        a.contains(&"--export=ALL,RAYON_NUM_THREADS=4".to_string()),
        "{a:?}"
    );
    assert!(a.contains(&"--time=1440".to_string()), "{a:?}");
    assert!(
        a.contains(&format!("--comment=rora:0123456789ab:{}", "ab".repeat(32))),
        "{a:?}"
    );
    assert_eq!(a[0], "--parsable");
    // the command is one shell line, the path with a space quoted
    let wrap = a.last().unwrap();
    assert_eq!(
        wrap,
        &format!("--wrap='/opt/rora bin/rora' job --key {}", "ab".repeat(32))
    );
}

#[test]
fn a_small_estimate_keeps_the_default_memory_and_cpu_jobs_ask_for_no_gpu() {
    let s = Settings::default();
    let r = resources(&s, &needs("train", true, true, Some(GIB)));
    assert_eq!(r.mem, 16 * GIB);
    let r = resources(&s, &needs("train", true, false, None));
    assert_eq!((r.gpus, r.cpus), (0, 4));
    let r = resources(&s, &needs("data", false, true, None));
    assert_eq!((r.gpus, r.cpus, r.mem, r.time), (0, 1, 4 * GIB, 60));
    let a = sbatch_args(&s, &sub(&s, &needs("data", false, true, None)));
    assert!(!a.iter().any(|x| x.starts_with("--gres")), "{a:?}");
}

#[test]
fn gpus_flag_partition_account_qos_and_extra_arguments() {
    let mut s = Settings {
        gpu_flag: GpuFlag::Gpus,
        partition: Some("gpu".into()),
        account: Some("lab".into()),
        qos: Some("high".into()),
        sbatch: vec!["--constraint=a100".into()],
        ..Settings::default()
    };
    s.heavy.gpus = 2;
    let a = sbatch_args(&s, &sub(&s, &needs("eval", true, true, None)));
    for want in [
        "--gpus=2",
        "--partition=gpu",
        "--account=lab",
        "--qos=high",
        "--constraint=a100",
    ] {
        assert!(a.contains(&want.to_string()), "{want} in {a:?}");
    }
}

#[test]
fn overrides_by_stage_then_kind_later_wins() {
    let mut s = Settings::default();
    s.overrides
        .push(Override::parse("kind=train:time=2h,mem=8G").unwrap());
    s.overrides
        .push(Override::parse("ft:time=90,gpus=2,cpus=16").unwrap());
    let r = resources(&s, &needs("train", true, true, None));
    assert_eq!((r.time, r.mem, r.gpus, r.cpus), (90, 8 * GIB, 2, 16));
    // another stage of the kind gets only the kind's override
    let mut n = needs("train", true, true, None);
    n.stage = "ft2".into();
    assert_eq!(resources(&s, &n).time, 120);
    for bad in [
        "ft",
        "ft:time",
        "ft:colour=red",
        ":cpus=1",
        "ft:cpus=0",
        "ft:mem=lots",
    ] {
        assert!(Override::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn minutes_from_slurm_numbers_and_human_durations() {
    assert_eq!(parse_minutes("90").unwrap(), 90);
    assert_eq!(parse_minutes("4h").unwrap(), 240);
    assert_eq!(parse_minutes("1day 2h").unwrap(), 26 * 60);
    assert_eq!(parse_minutes("30s").unwrap(), 1);
    assert!(parse_minutes("soon").is_err());
}

#[test]
fn a_profile_sets_everything_it_names() {
    let text = r#"
partition "gpu"
account "lab"
qos "normal"
sbatch "--constraint=a100" "--exclusive"
max-jobs 7
poll "500ms"
retries 3
gpu-flag "gpus"
rora "/shared/bin/rora"
cpus 8
light-cpus 2
mem "32G"
light-mem "2G"
time "36h"
light-time "20m"
gpus 1
mem-margin 0.5
stage "ft" time="48h" mem="120G" gpus=2
kind "eval" time="4h"
"#;
    let mut s = Settings::default();
    s.apply_profile(Path::new("site.kdl"), text).unwrap();
    assert_eq!(s.partition.as_deref(), Some("gpu"));
    assert_eq!(s.sbatch, vec!["--constraint=a100", "--exclusive"]);
    assert_eq!(s.max_jobs, 7);
    assert_eq!(s.poll, std::time::Duration::from_millis(500));
    assert_eq!(s.retries, 3);
    assert_eq!(s.gpu_flag, GpuFlag::Gpus);
    assert_eq!(s.rora, Some(PathBuf::from("/shared/bin/rora")));
    assert_eq!(
        (s.heavy.cpus, s.heavy.mem, s.heavy.time),
        (8, 32 * GIB, 36 * 60)
    );
    assert_eq!((s.light.cpus, s.light.mem, s.light.time), (2, 2 * GIB, 20));
    assert_eq!(s.mem_margin, 0.5);
    assert_eq!(s.overrides.len(), 2);
    assert_eq!(s.overrides[0].target, Target::Stage("ft".into()));
    assert_eq!(s.overrides[0].mem, Some(120 * GIB));
    assert_eq!(s.overrides[1].target, Target::Kind("eval".into()));
    assert_eq!(s.overrides[1].time, Some(240));
}

#[test]
fn profile_errors_name_the_file_line_and_column() {
    let mut s = Settings::default();
    let e = s
        .apply_profile(
            Path::new("site.kdl"),
            "partition \"gpu\"\n  partitoin \"x\"\n",
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("site.kdl:2:3: unknown setting `partitoin`"),
        "{e}"
    );
    assert!(e.contains("did you mean `partition`?"), "{e}");
    let e = s
        .apply_profile(Path::new("site.kdl"), "max-jobs 0\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("site.kdl:1:1:"), "{e}");
    let e = s
        .apply_profile(Path::new("site.kdl"), "cpus 1 2\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("takes one value"), "{e}");
    let e = s
        .apply_profile(Path::new("p.kdl"), "poll \"5s\"\ntime {\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("p.kdl:"), "{e}");
    let e = s
        .apply_profile(Path::new("p.kdl"), "stage \"ft\" tiem=\"1h\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown resource `tiem`"), "{e}");
}

#[test]
fn squeue_rows_with_states_reasons_nodes_and_keys() {
    let text = "12|rora-0123abcd|PENDING|Resources||rora:s1:aa\n\
                13|rora-0123abcd|RUNNING|None|node7|rora:s1:bb\n\
                14|other|COMPLETED|None|node7|(null)\n\
                garbage\n\
                15|rora-x|NODE_FAIL|NodeDown|node3|rora:s2:cc\n";
    let rows = parse_squeue(text);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].reason, "Resources");
    assert!(rows[0].active() && rows[1].active());
    assert_eq!(rows[1].node, "node7");
    assert_eq!(rows[1].key.as_deref(), Some("bb"));
    assert_eq!(rows[1].store.as_deref(), Some("s1"));
    assert_eq!(rows[2].key, None);
    assert!(!rows[2].active() && !rows[2].retryable());
    assert!(!rows[3].active() && rows[3].retryable());
}

#[test]
fn shell_lines_quote_what_the_shell_would_split() {
    let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(shell_line(&w(&["a", "b=c", "/x/y.kdl"])), "a b=c /x/y.kdl");
    assert_eq!(
        shell_line(&w(&["it's", "two words", ""])),
        r"'it'\''s' 'two words' ''"
    );
}

#[test]
fn a_local_store_passes_the_sharing_check() {
    let dir = tempfile::tempdir().unwrap();
    super::check_store(dir.path()).unwrap();
}

#[test]
fn a_store_that_cannot_be_written_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let e = super::check_store(&file).unwrap_err().to_string();
    assert!(e.contains(&file.display().to_string()), "{e}");
}

#[test]
fn a_train_job_with_work_and_a_measured_rate_gets_its_time_from_them() {
    let mut s = Settings::default();
    let mut n = needs("train", true, true, None);
    n.flops = Some(3.6e15);
    // no rate: the default limit
    assert_eq!(resources(&s, &n).time, 24 * 60);
    s.rate = Some(super::settings::parse_rate("1T").unwrap());
    // 3600 s of work x 1.5 = 90 min, plus 10 min to start and commit
    assert_eq!(resources(&s, &n).time, 100);
    // an override still wins
    s.overrides.push(Override::parse("ft:time=7h").unwrap());
    assert_eq!(resources(&s, &n).time, 420);
    // light jobs never use it
    let mut d = needs("data", false, false, None);
    d.flops = Some(3.6e15);
    d.stage = "cs".into();
    assert_eq!(resources(&s, &d).time, 60);
}

#[test]
fn rates_with_si_suffixes() {
    use super::settings::parse_rate;
    assert_eq!(parse_rate("2.5T").unwrap(), 2.5e12);
    assert_eq!(parse_rate("80 TFLOP/s").unwrap(), 80e12);
    assert_eq!(parse_rate("350e12").unwrap(), 350e12);
    assert_eq!(parse_rate("900G").unwrap(), 900e9);
    assert!(parse_rate("fast").is_err());
    assert!(parse_rate("-1T").is_err());
}

#[test]
fn memory_in_slurm_units() {
    use super::settings::parse_mem;
    assert_eq!(parse_mem("4096").unwrap(), 4096 << 20);
    assert_eq!(parse_mem("512M").unwrap(), 512 << 20);
    assert_eq!(parse_mem("64G").unwrap(), 64 * GIB);
    assert_eq!(parse_mem("64GB").unwrap(), 64 * GIB);
    assert_eq!(parse_mem("1.5GiB").unwrap(), 3 * GIB / 2);
    assert_eq!(parse_mem("1T").unwrap(), 1024 * GIB);
    assert!(parse_mem("lots").is_err());
    assert!(parse_mem("0G").is_err());
}
