//! `rora schema [kind]`: the registry as text (or JSON with `--format json`).

use std::process::ExitCode;

use super::{Format, Global, exit};
use crate::schema::generate;
use crate::stages::spec;

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// A stage kind (model, prune, data, adapter, train, merge, eval, report), or `task` for the
    /// task file kind; all stage kinds when omitted.
    pub kind: Option<String>,
}

pub fn run(args: SchemaArgs, g: &Global) -> miette::Result<ExitCode> {
    let json = g.format == Some(Format::Json);
    let Some(name) = args.kind else {
        if json {
            let all: Vec<_> = crate::stages::writable()
                .iter()
                .map(|s| generate::kind_json(s.spec()))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&all).map_err(|e| miette::miette!("{e}"))?
            );
        } else {
            print!("{}", generate::text_of(crate::stages::writable()));
        }
        return Ok(ExitCode::from(exit::OK));
    };
    if name == crate::task::spec::TASK_KIND.name() {
        let spec = &crate::task::spec::SPEC;
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&generate::kind_json(spec))
                    .map_err(|e| miette::miette!("{e}"))?
            );
        } else {
            print!("{}", generate::kind_text(spec));
        }
        return Ok(ExitCode::from(exit::OK));
    }
    let Some(kind) = crate::stages::named(&name).map(|s| s.spec().kind) else {
        let names: Vec<&str> = crate::stages::writable()
            .iter()
            .map(|s| s.spec().kind.name())
            .collect();
        eprintln!(
            "error: `{name}` is not a stage kind (or `task`); {}",
            crate::diag::suggest_help(&name, &names, "kinds are")
        );
        return Ok(ExitCode::from(exit::CHECK_FAILED));
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&generate::kind_json(spec(kind)))
                .map_err(|e| miette::miette!("{e}"))?
        );
    } else {
        print!("{}", generate::kind_text(spec(kind)));
    }
    Ok(ExitCode::from(exit::OK))
}
