//! `rora check [pipeline]`: report every problem; exit 2 on errors.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Format, Global, exit, load, print_diagnostics};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The pipeline file (default: the embedded quickstart pipeline), or a task file
    /// (`task "<name>" { .. }`).
    pub pipeline: Option<PathBuf>,
}

pub fn run(args: CheckArgs, g: &Global) -> miette::Result<ExitCode> {
    if let Some(p) = &args.pipeline
        && std::fs::read_to_string(p).is_ok_and(|t| crate::check::task::is_task_source(&t))
    {
        return check_task(p, g);
    }
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

/// `rora check <task file>`: the task file's diagnostics with spans, or a summary of the task.
fn check_task(path: &std::path::Path, g: &Global) -> miette::Result<ExitCode> {
    let c = crate::check::task::check_task_file(path).map_err(|e| {
        miette::miette!(
            code = "rora::cli::read",
            "cannot read {}: {e}",
            path.display()
        )
    })?;
    let format = g.format();
    if format == Format::Json {
        print!("{}", crate::diag::render(&c.file, &c.diagnostics, format));
    } else if !c.diagnostics.is_empty() {
        eprint!("{}", crate::diag::render(&c.file, &c.diagnostics, format));
    }
    if c.has_errors() {
        return Ok(ExitCode::from(exit::CHECK_FAILED));
    }
    if format != Format::Json
        && let Some(d) = &c.def
    {
        let splits: Vec<String> = d
            .data
            .iter()
            .map(|(s, p)| format!("{s}={}", p.display()))
            .collect();
        println!(
            "{}: ok (task `{}`, {}..={} choices{}{})",
            c.file.name(),
            d.name,
            d.min_choices,
            d.max_choices,
            if splits.is_empty() {
                String::new()
            } else {
                format!(", {}", splits.join(", "))
            },
            d.fewshot.as_ref().map_or(String::new(), |f| format!(
                ", {}-shot from {}",
                f.n, f.split
            ))
        );
    }
    Ok(ExitCode::from(exit::OK))
}
