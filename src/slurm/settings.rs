//! Site settings for the Slurm executor: partition, account, qos, extra `sbatch` flags, how many
//! jobs to keep in the queue, how often to poll, and the resources each job asks for, with
//! per-stage and per-kind overrides. They come from a profile file the user keeps once
//! (`$XDG_CONFIG_HOME/rora/slurm.kdl`, or `--slurm-profile FILE`) and from flags, which win.
//! Nothing here enters a stage key: it changes where and when a job runs, not what it computes.
//!
//! The profile is KDL, one setting per node (docs/SLURM.md lists them):
//!
//! ```kdl
//! partition "gpu"
//! account "mylab"
//! sbatch "--constraint=a100"
//! max-jobs 50
//! poll "5s"
//! cpus 8
//! time "24h"
//! stage "ft" time="48h" mem="120G"
//! kind "eval" time="4h"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::SlurmError;
pub use super::units::{parse_mem, parse_minutes, parse_rate};

crate::choice_enum! {
    /// How a job asks for its GPU: `--gres=gpu:N` (every Slurm) or `--gpus=N` (cons_tres sites).
    pub enum GpuFlag {
        Gres = "gres",
        Gpus = "gpus",
    }
}

/// Every setting of the Slurm executor, with its default.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Extra `sbatch` arguments, given as they are (e.g. `--constraint=a100`).
    pub sbatch: Vec<String>,
    /// At most this many of this run's jobs queued or running at once.
    pub max_jobs: usize,
    /// How often the head asks `squeue` and the store.
    pub poll: Duration,
    /// Node failures and preemptions are resubmitted up to this many times.
    pub retries: u32,
    pub gpu_flag: GpuFlag,
    /// The rora binary the jobs run (default: this one; it must be reachable from the nodes).
    pub rora: Option<PathBuf>,
    /// Jobs that compute on the device (train, merge, eval, prune).
    pub heavy: Resources,
    /// Everything else (model, data, tokens, report): CPU only, little memory.
    pub light: Resources,
    /// Training FLOP/s of the nodes' device, as `rora bench train` measures it
    /// (`train_flops_per_s`). With it a train job's time limit is its work over this rate, times
    /// `1 + time_margin`, plus [`STARTUP_MINUTES`].
    pub rate: Option<f64>,
    pub time_margin: f64,
    /// Memory asked for a heavy job with an estimate: the estimate times `1 + mem_margin`, plus
    /// `light.mem` for the process itself, and never less than `heavy.mem`.
    pub mem_margin: f64,
    /// The profile's `stage` and `kind` entries; later entries win.
    pub overrides: Vec<Override>,
    /// `--resources` flags: applied after the pipeline's own `resources`.
    pub flag_overrides: Vec<Override>,
}

/// What one job asks Slurm for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub cpus: u32,
    /// Bytes.
    pub mem: u64,
    /// Minutes.
    pub time: u64,
    pub gpus: u32,
}

const GIB: u64 = 1 << 30;

/// Added to an estimated job time: loading the model, tokenized data and checkpoints, and
/// committing the result.
pub const STARTUP_MINUTES: u64 = 10;

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            partition: None,
            account: None,
            qos: None,
            sbatch: vec![],
            max_jobs: 100,
            poll: Duration::from_secs(2),
            retries: 1,
            gpu_flag: GpuFlag::Gres,
            rora: None,
            heavy: Resources {
                cpus: 4,
                mem: 16 * GIB,
                time: 24 * 60,
                gpus: 1,
            },
            light: Resources {
                cpus: 1,
                mem: 4 * GIB,
                time: 60,
                gpus: 0,
            },
            mem_margin: 0.25,
            rate: None,
            time_margin: 0.5,
            overrides: vec![],
            flag_overrides: vec![],
        }
    }
}

/// Which jobs an override applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every job of the stage with this name (`ft`, all sweep points).
    Stage(String),
    /// Every job of this kind (`train`).
    Kind(String),
}

/// Resources set for some jobs; `None` keeps what the defaults or the estimate give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub target: Target,
    pub cpus: Option<u32>,
    pub mem: Option<u64>,
    pub time: Option<u64>,
    pub gpus: Option<u32>,
}

impl Override {
    pub fn new(target: Target) -> Override {
        Override {
            target,
            cpus: None,
            mem: None,
            time: None,
            gpus: None,
        }
    }

    /// Set `key` (`cpus`, `mem`, `time`, `gpus`) from its text.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "cpus" => self.cpus = Some(parse_count(value)?),
            "gpus" => self.gpus = Some(value.parse().map_err(|_| format!("gpus `{value}`"))?),
            "mem" => self.mem = Some(parse_mem(value)?),
            "time" => self.time = Some(parse_minutes(value)?),
            other => return Err(format!("unknown resource `{other}`")),
        }
        Ok(())
    }

    /// `STAGE:key=value,...` or `kind=KIND:key=value,...` (the `--resources` flag).
    pub fn parse(text: &str) -> Result<Override, SlurmError> {
        let err = |why: String| SlurmError::Override {
            text: text.to_string(),
            why,
        };
        let (who, items) = text
            .split_once(':')
            .ok_or_else(|| err("no `:` after the stage".into()))?;
        let target = match who.strip_prefix("kind=") {
            Some(k) => Target::Kind(k.to_string()),
            None => Target::Stage(who.to_string()),
        };
        if who.is_empty() || who == "kind=" {
            return Err(err("empty stage name".into()));
        }
        let mut o = Override::new(target);
        for item in items.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| err(format!("`{item}` has no `=`")))?;
            o.set(k.trim(), v.trim()).map_err(err)?;
        }
        Ok(o)
    }

    pub fn applies(&self, stage: &str, kind: &str) -> bool {
        match &self.target {
            Target::Stage(s) => s == stage,
            Target::Kind(k) => k == kind,
        }
    }
}

fn parse_count(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}` is not a positive count")),
    }
}

/// The profile's default place: `$XDG_CONFIG_HOME/rora/slurm.kdl` (`~/.config/rora/slurm.kdl`).
pub fn default_profile() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("rora").join("slurm.kdl"))
}

impl Settings {
    /// The defaults with `path`'s settings applied.
    pub fn from_profile(path: &Path) -> Result<Settings, SlurmError> {
        let text = std::fs::read_to_string(path).map_err(|source| SlurmError::ProfileRead {
            path: path.to_path_buf(),
            source,
        })?;
        let mut s = Settings::default();
        s.apply_profile(path, &text)?;
        Ok(s)
    }

    /// Apply the settings of a profile's text (`path` names it in errors).
    pub fn apply_profile(&mut self, path: &Path, text: &str) -> Result<(), SlurmError> {
        let at = |offset: usize, msg: String| {
            let before = &text[..offset.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            SlurmError::Profile {
                path: path.to_path_buf(),
                line,
                col,
                msg,
            }
        };
        let doc = kdl::KdlDocument::parse(text).map_err(|e| {
            let first = e.diagnostics.first();
            let offset = first.map_or(0, |d| d.span.offset());
            let msg = first
                .and_then(|d| d.message.clone().or(d.label.clone()))
                .unwrap_or_else(|| "not valid KDL".to_string());
            at(offset, msg)
        })?;
        for node in doc.nodes() {
            let name = node.name().value();
            let offset = node.span().offset();
            self.apply_node(node, name).map_err(|m| at(offset, m))?;
        }
        Ok(())
    }

    fn apply_node(&mut self, node: &kdl::KdlNode, name: &str) -> Result<(), String> {
        let args: Vec<&kdl::KdlValue> = node
            .entries()
            .iter()
            .filter(|e| e.name().is_none())
            .map(|e| e.value())
            .collect();
        let text = |i: usize| -> Result<String, String> {
            match args.get(i) {
                Some(kdl::KdlValue::String(s)) => Ok(s.clone()),
                Some(kdl::KdlValue::Integer(n)) => Ok(n.to_string()),
                Some(kdl::KdlValue::Float(f)) => Ok(f.to_string()),
                Some(other) => Err(format!("`{name}`: unexpected value {other}")),
                None => Err(format!("`{name}` needs a value")),
            }
        };
        let one = || -> Result<String, String> {
            if args.len() != 1 {
                return Err(format!("`{name}` takes one value, found {}", args.len()));
            }
            text(0)
        };
        match name {
            "partition" => self.partition = Some(one()?),
            "account" => self.account = Some(one()?),
            "qos" => self.qos = Some(one()?),
            "sbatch" => {
                for i in 0..args.len() {
                    self.sbatch.push(text(i)?);
                }
            }
            "max-jobs" => self.max_jobs = parse_count(&one()?)? as usize,
            "poll" => {
                let t = one()?;
                self.poll = humantime::parse_duration(&t).map_err(|e| format!("poll `{t}`: {e}"))?
            }
            "retries" => {
                let t = one()?;
                self.retries = t.parse().map_err(|_| format!("retries `{t}`"))?
            }
            "gpu-flag" => {
                let t = one()?;
                self.gpu_flag = GpuFlag::from_name(&t).ok_or_else(|| {
                    format!("gpu-flag `{t}`: expected one of {:?}", GpuFlag::NAMES)
                })?
            }
            "rora" => self.rora = Some(PathBuf::from(one()?)),
            "cpus" => self.heavy.cpus = parse_count(&one()?)?,
            "light-cpus" => self.light.cpus = parse_count(&one()?)?,
            "mem" => self.heavy.mem = parse_mem(&one()?)?,
            "light-mem" => self.light.mem = parse_mem(&one()?)?,
            "time" => self.heavy.time = parse_minutes(&one()?)?,
            "light-time" => self.light.time = parse_minutes(&one()?)?,
            "gpus" => {
                let t = one()?;
                self.heavy.gpus = t.parse().map_err(|_| format!("gpus `{t}`"))?
            }
            "rate" => self.rate = Some(parse_rate(&one()?)?),
            "time-margin" => {
                let t = one()?;
                self.time_margin = match t.parse::<f64>() {
                    Ok(m) if (0.0..=10.0).contains(&m) => m,
                    _ => return Err(format!("time-margin `{t}`: a number from 0 to 10")),
                }
            }
            "mem-margin" => {
                let t = one()?;
                self.mem_margin = match t.parse::<f64>() {
                    Ok(m) if (0.0..=10.0).contains(&m) => m,
                    _ => return Err(format!("mem-margin `{t}`: a number from 0 to 10")),
                }
            }
            "stage" | "kind" => {
                let who = one()?;
                let mut o = Override::new(if name == "stage" {
                    Target::Stage(who)
                } else {
                    Target::Kind(who)
                });
                for e in node.entries().iter() {
                    let Some(key) = e.name() else { continue };
                    let v = match e.value() {
                        kdl::KdlValue::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    o.set(key.value(), &v)?;
                }
                self.overrides.push(o);
            }
            other => {
                let known = [
                    "partition",
                    "account",
                    "qos",
                    "sbatch",
                    "max-jobs",
                    "poll",
                    "retries",
                    "gpu-flag",
                    "rora",
                    "cpus",
                    "light-cpus",
                    "mem",
                    "light-mem",
                    "time",
                    "light-time",
                    "gpus",
                    "mem-margin",
                    "rate",
                    "time-margin",
                    "stage",
                    "kind",
                ];
                let hint = crate::diag::suggest(other, known.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(format!("unknown setting `{other}`{hint}"));
            }
        }
        Ok(())
    }
}
