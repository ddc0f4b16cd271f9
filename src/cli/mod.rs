//! The command-line front end: clap derive, one file per subcommand, one [`Command`] variant each.
//!
//! Exit codes ([`exit`]): 0 ok, 1 internal error, 2 check failed, 3 stage failed, 4 `rora job`
//! found its key held by another process, 130 interrupted.
//! To add a subcommand: write `src/cli/<name>.rs` with an `Args` struct and a `run`, add a variant
//! to [`Command`] and a line to [`dispatch`].

pub mod bench;
pub mod bench_eval;
pub mod cache;
pub mod check;
pub mod explain;
pub mod job;
pub mod load;
pub mod logits;
pub mod model;
pub mod plan;
pub mod report;
pub mod run;
pub mod schema;
pub mod show_output;
pub mod slurm;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::check::CheckResult;
pub use crate::diag::Format;

/// Documented exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    pub const INTERNAL: u8 = 1;
    pub const CHECK_FAILED: u8 = 2;
    pub const STAGE_FAILED: u8 = 3;
    /// `rora job`: another process holds the key; nothing was done.
    pub const BUSY: u8 = 4;
    /// The run was interrupted (SIGINT, SIGTERM) and stopped what it had started.
    pub const INTERRUPTED: u8 = 130;
}

/// The quickstart pipeline, embedded: `rora check` / `rora plan` without a file use it.
pub const QUICKSTART: &str = include_str!("../../pipelines/quickstart.kdl");

/// Fine-tune LLaMA-family models with LoRA / RoRA / DoRA adapters, driven by KDL pipelines.
///
/// Exit codes: 0 ok, 1 internal error, 2 check failed, 3 stage failed, 4 key held elsewhere
/// (`rora job`), 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "rora", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// The artifact cache (default: $XDG_CACHE_HOME/rora).
    #[arg(long, global = true, env = "RORA_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// How to print diagnostics and results (default: fancy on a terminal, plain otherwise).
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,
}

impl Global {
    pub fn format(&self) -> Format {
        self.format.unwrap_or(if std::io::stderr().is_terminal() {
            Format::Fancy
        } else {
            Format::Plain
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a pipeline: every problem at once, with spans (exit 2 on errors).
    Check(check::CheckArgs),
    /// Show the job DAG after sweep expansion: keys, dependencies, effective scale, cached or not.
    Plan(plan::PlanArgs),
    /// Print the schema of a stage kind (or of all), from the registry the checker uses.
    Schema(schema::SchemaArgs),
    /// Explain a diagnostic code (`rora explain rora::shape::arity`) or a job's key (`rora explain ft@rank=8 x.kdl`).
    Explain(explain::ExplainArgs),
    /// Run a pipeline: compute every job that is not cached, in dependency order.
    Run(run::RunArgs),
    /// Compute exactly one planned job (by key) against the store: what each Slurm job runs.
    Job(job::JobArgs),
    /// Inspect a model, measure perplexity, or generate (`info`, `ppl`, `generate`).
    Model(model::ModelArgs),
    /// Where a job's artifacts are in the cache (`rora show-output ft@rank=8 x.kdl`).
    ShowOutput(show_output::ShowOutputArgs),
    /// Tables and plots (accuracy vs rank, loss curves) from run directories or a runs.json.
    Report(report::ReportArgs),
    /// The artifact store: `ls`, `verify`, `gc`.
    Cache(cache::CacheArgs),
    /// Measure training throughput on random data (compare with PyTorch + PEFT).
    Bench(bench::BenchArgs),
    /// Print a shell completion script (`rora completions bash > /etc/bash_completion.d/rora`).
    Completions(CompletionsArgs),
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The completion script of `shell` for every subcommand and option, from the same clap
/// definitions the parser uses.
fn completions(shell: clap_complete::Shell) {
    use clap::CommandFactory;
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rora", &mut script);
    // A closed pipe (`rora completions bash | head`) is the reader's choice, not an error.
    let _ = std::io::stdout().lock().write_all(&script);
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(exit::INTERNAL)
        }
    }
}

pub fn dispatch(cli: Cli) -> miette::Result<ExitCode> {
    let g = cli.global;
    match cli.command {
        Command::Check(a) => check::run(a, &g),
        Command::Plan(a) => plan::run(a, &g),
        Command::Schema(a) => schema::run(a, &g),
        Command::Explain(a) => explain::run(a, &g),
        Command::Run(a) => run::run(a, &g),
        Command::Job(a) => job::run(a, &g),
        Command::Model(a) => model::run(a).map(|()| ExitCode::SUCCESS),
        Command::ShowOutput(a) => show_output::run(a, &g),
        Command::Report(a) => report::run(a).map(|()| ExitCode::SUCCESS),
        Command::Cache(a) => cache::run(a, g.cache_dir.clone(), g.format == Some(Format::Json))
            .map(|()| ExitCode::SUCCESS),
        Command::Completions(a) => {
            completions(a.shell);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(a) => bench::run(a).map(|()| ExitCode::SUCCESS),
    }
}

/// Check the pipeline at `path`, or the embedded quickstart when `None`.
pub fn load(path: Option<&Path>) -> miette::Result<CheckResult> {
    match path {
        Some(p) => crate::check::check_file(p).map_err(|e| {
            miette::miette!(code = "rora::cli::read", "cannot read {}: {e}", p.display())
        }),
        None => {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("pipelines")
                .join("quickstart.kdl");
            Ok(crate::check::check_bytes(p, QUICKSTART.as_bytes()))
        }
    }
}

/// Print the diagnostics of a check (stderr for text, stdout for JSON).
pub fn print_diagnostics(r: &CheckResult, format: Format) {
    if format == Format::Json {
        print!("{}", crate::diag::render(&r.file, &r.diagnostics, format));
    } else if !r.diagnostics.is_empty() {
        eprint!("{}", crate::diag::render(&r.file, &r.diagnostics, format));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
