//! The integration test binary: the ui corpus with rendered-diagnostic snapshots, every shipped
//! pipeline and README kdl block, bad input, a bounded mutation fuzz, planning (golden keys,
//! sharing), and the CLI's exit codes.

mod bad_input;
mod cli;
mod device;
mod fuzz;
mod pipelines;
mod plan;
mod run;
mod ui;

use std::path::PathBuf;

/// The repository root (tests run with it as the working directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
