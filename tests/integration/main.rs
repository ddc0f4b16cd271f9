//! The integration test binary: the ui corpus with rendered-diagnostic snapshots, every shipped
//! pipeline and README kdl block, bad input, a bounded mutation fuzz, planning (golden keys,
//! sharing), the CLI's exit codes, `rora run` end to end with its faults (concurrent runs, disk
//! full, permission errors, corrupt entries), the hub through a local server, and (with the shared
//! SmolLM2 asset) pruning recovery.

mod bad_input;
mod bottleneck;
mod chat_data;
mod cli;
mod device;
mod fakehub;
mod faults;
mod fuzz;
mod hub;
mod peft_adapters;
mod peft_interop;
mod pipelines;
mod plan;
mod prune_recovery;
mod run;
mod slurm;
mod sparse_merge;
mod spm_gguf;
mod support;
mod tasks;
mod toy_stage;
mod ui;

use std::path::PathBuf;

/// The repository root (tests run with it as the working directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
