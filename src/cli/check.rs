//! `rora check [pipeline]`: report every problem; exit 2 on errors.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Format, Global, exit, load, print_diagnostics};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The pipeline file (default: the embedded quickstart pipeline).
    pub pipeline: Option<PathBuf>,
}

pub fn run(args: CheckArgs, g: &Global) -> miette::Result<ExitCode> {
    let r = load(args.pipeline.as_deref())?;
    let format = g.format();
    print_diagnostics(&r, format);
    if r.has_errors() {
        return Ok(ExitCode::from(exit::CHECK_FAILED));
    }
    if format != Format::Json
        && let Some(p) = &r.pipeline
    {
        println!(
            "{}: ok ({} stages, {} sweep axes, {} params)",
            r.file.name(),
            p.stages.len(),
            p.axes.len(),
            p.params.len()
        );
    }
    Ok(ExitCode::from(exit::OK))
}
