//! Multi-process tests. The parent spawns this very test binary running the ignored `child` test,
//! whose behaviour is chosen by `RORA_CACHE_CHILD` (mode), `RORA_CACHE_CHILD_ROOT` (store root),
//! `RORA_CACHE_CHILD_KEY` and `RORA_CACHE_CHILD_DIR` (a scratch dir for counters and signals).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::super::{CacheError, Lookup, Probe, Store, layout};
use super::{count_dir, info, key, put};

const MODE: &str = "RORA_CACHE_CHILD";

fn child_cmd(mode: &str, root: &Path, key: &str, scratch: &Path) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        "cache::tests::process::child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(MODE, mode)
    .env("RORA_CACHE_CHILD_ROOT", root)
    .env("RORA_CACHE_CHILD_KEY", key)
    .env("RORA_CACHE_CHILD_DIR", scratch)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed: {text}");
    text
}

/// The body of every child process; not a test on its own.
#[test]
#[ignore = "helper run as a child process by the other tests in this file"]
fn child() {
    let Ok(mode) = std::env::var(MODE) else {
        println!("skipped: this helper only runs as a child process of the tests in this file");
        return;
    };
    let root = std::env::var("RORA_CACHE_CHILD_ROOT").unwrap();
    let k = std::env::var("RORA_CACHE_CHILD_KEY").unwrap();
    let scratch = std::path::PathBuf::from(std::env::var("RORA_CACHE_CHILD_DIR").unwrap());
    let store = Store::open(&root).unwrap();
    match mode.as_str() {
        "compute" => match store.lookup(&k).unwrap() {
            Lookup::Hit(e) => {
                println!("CHILD hit {}", fs::read_to_string(e.file("a.txt")).unwrap())
            }
            Lookup::Miss(r) => {
                let mut f = fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(scratch.join("count"))
                    .unwrap();
                writeln!(f, "{}", std::process::id()).unwrap();
                std::thread::sleep(Duration::from_millis(400));
                fs::write(
                    r.out_dir().join("a.txt"),
                    format!("pid {}", std::process::id()),
                )
                .unwrap();
                r.commit(info("s")).unwrap();
                println!("CHILD computed");
            }
        },
        "hang" => {
            let Lookup::Miss(r) = store.lookup(&k).unwrap() else {
                panic!("expected a miss")
            };
            fs::write(r.out_dir().join("partial.bin"), vec![7u8; 4096]).unwrap();
            fs::write(r.resume_dir().unwrap().join("ckpt"), "step 5").unwrap();
            fs::write(scratch.join("ready"), "").unwrap();
            std::thread::sleep(Duration::from_secs(60));
            panic!("should have been killed");
        }
        "readonly" => {
            assert!(
                matches!(store.lookup(&key("existing")).unwrap(), Lookup::Hit(_)),
                "reads still work"
            );
            let err = store.lookup(&k).unwrap_err();
            assert!(
                matches!(&err, CacheError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
            );
            println!("CHILD error: {err}");
        }
        "commit-fails" => {
            let Lookup::Miss(r) = store.lookup(&k).unwrap() else {
                panic!("expected a miss")
            };
            for i in 0..200 {
                fs::write(r.out_dir().join(format!("f{i:03}.txt")), "0123456789").unwrap();
            }
            let err = r.commit(info("s")).unwrap_err();
            println!("CHILD error: {err}");
        }
        other => panic!("unknown mode {other}"),
    }
}

#[test]
fn two_processes_racing_for_one_key_compute_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cache");
    let k = key("two-processes");
    let a = child_cmd("compute", &root, &k, tmp.path()).spawn().unwrap();
    let b = child_cmd("compute", &root, &k, tmp.path()).spawn().unwrap();
    let outs = [finish(a), finish(b)];
    let count = fs::read_to_string(tmp.path().join("count")).unwrap();
    assert_eq!(
        count.lines().count(),
        1,
        "computed once: {count:?} {outs:?}"
    );
    assert_eq!(
        outs.iter().filter(|o| o.contains("CHILD computed")).count(),
        1,
        "{outs:?}"
    );
    assert_eq!(
        outs.iter().filter(|o| o.contains("CHILD hit pid")).count(),
        1,
        "{outs:?}"
    );
}

#[test]
fn sigkill_mid_stage_leaves_no_entry_and_staging_is_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cache");
    let k = key("killed");
    let mut child = child_cmd("hang", &root, &k, tmp.path()).spawn().unwrap();
    let start = Instant::now();
    while !tmp.path().join("ready").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "child never got ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on unix
    child.wait().unwrap();
    assert_eq!(
        count_dir(&layout::staging_root(&root)),
        1,
        "the dead child's staging dir is left behind"
    );
    let store = Store::open(&root).unwrap();
    assert_eq!(
        count_dir(&layout::staging_root(&root)),
        0,
        "open removes it"
    );
    assert!(matches!(store.probe(&k).unwrap(), Probe::Absent));
    let Lookup::Miss(r) = store.lookup(&k).unwrap() else {
        panic!("the key is free again")
    };
    // The checkpoint written before the kill is there for the retry, and goes once committed.
    let resume = r.resume_dir().unwrap();
    assert_eq!(fs::read_to_string(resume.join("ckpt")).unwrap(), "step 5");
    fs::write(r.out_dir().join("a.txt"), "resumed").unwrap();
    r.commit(info("s")).unwrap();
    assert!(!resume.exists());
}

/// [`child_cmd`] run as an unprivileged user when we are root (root ignores permission bits).
/// That user may not reach the test binary (a checkout under a 0700 directory, as `mktemp -d`
/// makes), so the child runs a hard link (or copy) of it inside `scratch`, which
/// [`open_for_all`] made reachable.
#[allow(unsafe_code)] // test harness: a libc call with no preconditions
fn unprivileged_child_cmd(mode: &str, root: &Path, key: &str, scratch: &Path) -> Command {
    let mut cmd = child_cmd(mode, root, key, scratch);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let exe = std::env::current_exe().expect("test binary path");
        let reachable = scratch.join("child-test-binary");
        if fs::hard_link(&exe, &reachable).is_err() {
            fs::copy(&exe, &reachable).expect("copy the test binary into the scratch dir");
        }
        fs::set_permissions(&reachable, fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new(&reachable);
        c.args(cmd.get_args())
            .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .current_dir(scratch)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .uid(65534)
            .gid(65534);
        cmd = c;
    }
    cmd
}

fn open_for_all(path: &Path) {
    let mut p = path.to_path_buf();
    loop {
        if let Ok(m) = fs::metadata(&p) {
            let mode = m.permissions().mode();
            if mode & 0o005 != 0o005 && p.starts_with(std::env::temp_dir()) {
                let _ = fs::set_permissions(&p, fs::Permissions::from_mode(mode | 0o755));
            }
        }
        if !p.pop() {
            break;
        }
    }
}

fn chmod_tree(dir: &Path, mode: u32) {
    for node in super::super::fsutil::walk(dir).unwrap() {
        if let super::super::fsutil::Node::Dir(p) = node {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn read_only_store_gives_a_clean_error_and_keeps_serving_hits() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cache");
    let store = Store::open(&root).unwrap();
    put(&store, &key("existing"), "kept");
    open_for_all(&root);
    chmod_tree(&root, 0o555);
    let mut cmd = unprivileged_child_cmd("readonly", &root, &key("new"), tmp.path());
    let out = finish(cmd.spawn().unwrap());
    chmod_tree(&root, 0o755);
    assert!(
        out.contains("CHILD error: cache: cannot open lock file"),
        "{out}"
    );
    assert!(out.contains("Permission denied"), "{out}");
    assert!(matches!(store.probe(&key("new")).unwrap(), Probe::Absent));
}

#[test]
fn permission_error_at_commit_leaves_no_partial_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cache");
    let store = Store::open(&root).unwrap();
    let kept = key("kept");
    put(&store, &kept, "intact");
    open_for_all(&root);
    // Locks and staging writable, entries not: the rename into the store is refused.
    chmod_tree(&root, 0o555);
    for d in [
        layout::staging_root(&root),
        layout::locks_root(&root),
        layout::trash_root(&root),
    ] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
    }
    let k = key("refused");
    let mut cmd = unprivileged_child_cmd("commit-fails", &root, &k, tmp.path());
    let out = finish(cmd.spawn().unwrap());
    chmod_tree(&root, 0o755);
    assert!(out.contains("CHILD error: cache: cannot"), "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    assert_full_rollback(&store, &k, &kept);
}

#[test]
#[allow(unsafe_code)] // test harness: setrlimit in the child between fork and exec
fn file_size_limit_at_commit_leaves_no_partial_entry() {
    // RLIMIT_FSIZE makes writes past 4 KiB fail (EFBIG), as a full disk would fail them (ENOSPC):
    // the 200 output files fit, the manifest listing them does not.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cache");
    let store = Store::open(&root).unwrap();
    let kept = key("kept");
    put(&store, &kept, "intact");
    let k = key("too-big");
    let mut cmd = child_cmd("commit-fails", &root, &k, tmp.path());
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = finish(cmd.spawn().unwrap());
    assert!(
        out.contains("CHILD error: cache: disk full / file too large: cannot write"),
        "{out}"
    );
    assert!(out.contains("manifest.json"), "{out}");
    assert_full_rollback(&store, &k, &kept);
}

fn assert_full_rollback(store: &Store, failed: &str, kept: &str) {
    assert!(
        matches!(store.probe(failed).unwrap(), Probe::Absent),
        "no partial entry"
    );
    assert_eq!(
        count_dir(&layout::staging_root(store.root())),
        0,
        "staging removed"
    );
    let Lookup::Hit(e) = store.lookup(kept).unwrap() else {
        panic!("earlier entry lost")
    };
    assert_eq!(fs::read_to_string(e.file("a.txt")).unwrap(), "intact");
    assert!(
        super::super::verify::verify(store)
            .unwrap()
            .iter()
            .all(|v| v.result.is_ok())
    );
}
