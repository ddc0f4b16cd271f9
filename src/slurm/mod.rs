//! Running a plan's jobs on a Slurm cluster (`rora run --executor slurm`).
//!
//! The head process ([`head::Head`]) keeps the job graph and submits each job with `sbatch` once
//! its inputs are committed; each Slurm job runs `rora job P --key K`, which computes exactly
//! that job against the shared store and exits. Only keys that are not in the store are ever
//! submitted, and a job is done when its entry is committed, whatever the scheduler says.
//!
//! ```text
//! settings (profile + flags) -> resources per job (kind, device, memory estimate, overrides)
//!     -> command::sbatch_args -> Cluster::submit | queue | cancel (SlurmCli: the real commands)
//! ```
//!
//! Nothing here enters a stage key. docs/SLURM.md is the site guide.

pub mod command;
pub mod error;
pub mod head;
pub mod resources;
pub mod settings;
pub mod store_check;
pub mod units;

pub use command::{Cluster, QueueRow, SlurmCli, Submission, sbatch_line};
pub use error::SlurmError;
pub use head::{Head, HeadRun, run_name};
pub use resources::{JobNeeds, resources};
pub use settings::{GpuFlag, Override, Resources, Settings, default_profile};
pub use store_check::check_store;

#[cfg(test)]
mod tests;
