//! The Slurm commands rora uses, as argument lists and as processes: `sbatch --parsable` to
//! submit one job, `squeue` to see every rora job of this user (one call per poll, whatever the
//! number of jobs), `scancel` to stop jobs. Accounting (`sacct`) is not needed: a job is done when
//! its entry is committed to the store, and `squeue` keeps finished jobs for `MinJobAge`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::SlurmError;
use super::resources::mem_mib;
use super::settings::{GpuFlag, Resources, Settings};

/// Every rora job's name starts with this; the rest is the run's tag.
pub const NAME_PREFIX: &str = "rora-";
/// A job's `--comment` is `rora:<store id>:<key>`, so any head can see which keys of its store
/// are queued.
pub const COMMENT_PREFIX: &str = "rora:";

/// A short name of a store, the same from every node that mounts it at the same path.
pub fn store_id(root: &Path) -> String {
    let abs = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    blake3::hash(abs.to_string_lossy().as_bytes()).to_hex()[..12].to_string()
}

/// One job to submit.
#[derive(Debug, Clone)]
pub struct Submission {
    /// `rora-<tag>`: the run's name, shared by all its jobs.
    pub name: String,
    /// [`store_id`] of the store the job commits to.
    pub store: String,
    pub key: String,
    /// Slurm writes the job's output here (`%j` is its id).
    pub log: PathBuf,
    pub resources: Resources,
    /// The command the job runs.
    pub command: Vec<String>,
}

/// The `sbatch` arguments of `sub` under `s` (without the program name).
pub fn sbatch_args(s: &Settings, sub: &Submission) -> Vec<String> {
    let r = &sub.resources;
    let mut a = vec![
        "--parsable".to_string(),
        format!("--job-name={}", sub.name),
        format!("--comment={COMMENT_PREFIX}{}:{}", sub.store, sub.key),
        format!("--output={}", sub.log.display()),
        "--open-mode=append".to_string(),
        "--nodes=1".to_string(),
        "--ntasks=1".to_string(),
        format!("--cpus-per-task={}", r.cpus),
        // The compute threads match the CPUs asked for (rayon would take the whole node); the
        // thread count changes no result (fixed reduction order, ARCHITECTURE.md).
        format!("--export=ALL,RAYON_NUM_THREADS={}", r.cpus),
        format!("--mem={}M", mem_mib(r.mem)),
        format!("--time={}", r.time),
    ];
    if r.gpus > 0 {
        a.push(match s.gpu_flag {
            GpuFlag::Gres => format!("--gres=gpu:{}", r.gpus),
            GpuFlag::Gpus => format!("--gpus={}", r.gpus),
        });
    }
    for (flag, v) in [
        ("partition", &s.partition),
        ("account", &s.account),
        ("qos", &s.qos),
    ] {
        if let Some(v) = v {
            a.push(format!("--{flag}={v}"));
        }
    }
    a.extend(s.sbatch.iter().cloned());
    a.push(format!("--wrap={}", shell_line(&sub.command)));
    a
}

/// The whole `sbatch` command line, quoted for a shell (what `rora plan --executor slurm` prints).
pub fn sbatch_line(s: &Settings, sub: &Submission) -> String {
    let mut words = vec!["sbatch".to_string()];
    words.extend(sbatch_args(s, sub));
    shell_line(&words)
}

/// `words` joined for `sh`, each quoted when it needs to be.
pub fn shell_line(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

fn quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// A job's state as `squeue` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    pub id: String,
    pub name: String,
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, `NODE_FAIL`, ...
    pub state: String,
    /// Why it waits or ended (`Priority`, `Resources`, `NonZeroExitCode`, ...; `None`).
    pub reason: String,
    pub node: String,
    /// The store id and key from the job's comment, for rora jobs.
    pub store: Option<String>,
    pub key: Option<String>,
}

impl QueueRow {
    /// Still queued or running (not a final state).
    pub fn active(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PENDING"
                | "RUNNING"
                | "CONFIGURING"
                | "COMPLETING"
                | "REQUEUED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "RESIZING"
                | "SIGNALING"
                | "STAGE_OUT"
                | "SUSPENDED"
                | "STOPPED"
                | "RESV_DEL_HOLD"
        )
    }

    /// Ended by the cluster, not by the job: worth submitting again.
    pub fn retryable(&self) -> bool {
        matches!(self.state.as_str(), "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL")
    }
}

/// The `squeue` format rora asks for, and how it reads it back.
pub const SQUEUE_FORMAT: &str = "%i|%j|%T|%r|%N|%k";

/// Parse `squeue -h -o SQUEUE_FORMAT` output; rows of other formats are skipped.
pub fn parse_squeue(text: &str) -> Vec<QueueRow> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.trim().splitn(6, '|').collect();
            if f.len() != 6 || f[0].is_empty() {
                return None;
            }
            let (store, key) = match f[5]
                .strip_prefix(COMMENT_PREFIX)
                .and_then(|c| c.split_once(':'))
            {
                Some((s, k)) => (Some(s.to_string()), Some(k.to_string())),
                None => (None, None),
            };
            Some(QueueRow {
                id: f[0].to_string(),
                name: f[1].to_string(),
                state: f[2].split_whitespace().next().unwrap_or("").to_string(),
                reason: f[3].to_string(),
                node: f[4].to_string(),
                store,
                key,
            })
        })
        .collect()
}

/// The cluster as the head sees it. [`SlurmCli`] runs the real commands.
pub trait Cluster: Sync {
    /// Submit; the job's id.
    fn submit(&self, settings: &Settings, sub: &Submission) -> Result<String, SlurmError>;
    /// Every rora job of this user that the controller still knows, finished ones included.
    fn queue(&self) -> Result<Vec<QueueRow>, SlurmError>;
    /// Cancel these jobs (ids).
    fn cancel(&self, ids: &[String]) -> Result<(), SlurmError>;
}

/// The real Slurm client commands on `PATH` (configured by `SLURM_CONF` or the site default).
#[derive(Debug, Clone, Default)]
pub struct SlurmCli;

fn run(program: &str, args: &[String]) -> Result<String, SlurmError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| SlurmError::Spawn {
            program: program.to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(SlurmError::Command {
            command: format!("{program} {}", shell_line(args)),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Cluster for SlurmCli {
    fn submit(&self, settings: &Settings, sub: &Submission) -> Result<String, SlurmError> {
        let args = sbatch_args(settings, sub);
        let out = run("sbatch", &args)?;
        // `--parsable` prints `id` or `id;cluster`.
        let id = out.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
            return Err(SlurmError::BadJobId {
                command: "sbatch --parsable".into(),
                output: out,
            });
        }
        Ok(id)
    }

    fn queue(&self) -> Result<Vec<QueueRow>, SlurmError> {
        let args: Vec<String> = ["-h", "--me", "--states=all", "-o", SQUEUE_FORMAT]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Ok(parse_squeue(&run("squeue", &args)?)
            .into_iter()
            .filter(|r| r.name.starts_with(NAME_PREFIX))
            .collect())
    }

    fn cancel(&self, ids: &[String]) -> Result<(), SlurmError> {
        if ids.is_empty() {
            return Ok(());
        }
        run("scancel", ids).map(|_| ())
    }
}

/// The last `n` lines of a job's log (empty when it cannot be read).
pub fn log_tail(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
