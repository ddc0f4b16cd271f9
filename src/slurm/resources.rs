//! What each job asks Slurm for. A job that computes on the device (train, merge, eval, prune:
//! [`crate::stages::Stage::accelerated`]) gets the heavy resources, with one GPU when the run's
//! device is CUDA, memory from `rora plan`'s estimate plus a margin where there is one, and a time
//! limit from the job's work over the measured rate where both are known; every other job gets
//! the light resources. Overrides come last: the profile's, then the stage's `resources` in the
//! pipeline, then `--resources`.

use super::settings::{Override, Resources, STARTUP_MINUTES, Settings};

/// What the head knows about a job when it sizes it.
#[derive(Debug, Clone)]
pub struct JobNeeds {
    pub stage: String,
    pub kind: String,
    /// The job computes on the run's device.
    pub accelerated: bool,
    /// The run's device is a GPU.
    pub cuda: bool,
    /// The job's memory estimate in bytes, when there is one: `rora plan`'s for train jobs, the
    /// f32 weights for model jobs.
    pub memory: Option<u64>,
    /// The job's floating-point work, when its kind knows it (train jobs with `steps`).
    pub flops: Option<f64>,
    /// The stage's `resources` in the pipeline: after the profile, before `--resources`.
    pub declared: Option<Override>,
}

/// The time limit of a job of `flops` on a device of `rate` FLOP/s, in minutes: the work over the
/// rate times `1 + margin`, plus [`STARTUP_MINUTES`].
pub fn estimated_minutes(flops: f64, rate: f64, margin: f64) -> u64 {
    let compute = flops / rate * (1.0 + margin) / 60.0;
    compute.ceil() as u64 + STARTUP_MINUTES
}

/// The resources of one job under `s`.
pub fn resources(s: &Settings, n: &JobNeeds) -> Resources {
    let mut r = if n.accelerated { s.heavy } else { s.light };
    if !(n.accelerated && n.cuda) {
        r.gpus = 0;
    }
    if let Some(est) = n.memory {
        // On the CPU the estimate is host memory; on a GPU the host still holds the loaded
        // weights on their way to the device, so the same bound serves for both.
        let want = (est as f64 * (1.0 + s.mem_margin)).ceil() as u64 + s.light.mem;
        r.mem = r.mem.max(want);
    }
    if n.accelerated
        && let (Some(f), Some(rate)) = (n.flops, s.rate)
    {
        r.time = estimated_minutes(f, rate, s.time_margin);
    }
    let profile = s.overrides.iter().filter(|o| o.applies(&n.stage, &n.kind));
    let flags = s
        .flag_overrides
        .iter()
        .filter(|o| o.applies(&n.stage, &n.kind));
    for o in profile.chain(n.declared.iter()).chain(flags) {
        r.cpus = o.cpus.unwrap_or(r.cpus);
        r.mem = o.mem.unwrap_or(r.mem);
        r.time = o.time.unwrap_or(r.time);
        r.gpus = o.gpus.unwrap_or(r.gpus);
    }
    r
}

/// Memory in whole MiB for `--mem` (rounded up).
pub fn mem_mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20).max(1)
}
