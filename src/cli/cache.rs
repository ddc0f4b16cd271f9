//! `rora cache ls | verify | gc`: inspect and prune the artifact store.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use miette::{IntoDiagnostic, miette};

use crate::cache::gc::{GcPolicy, gc};
use crate::cache::{Store, inventory, layout, verify};
use crate::exec::console::human_bytes;

#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// List entries: key, stage, kind, size, age, pipeline.
    Ls,
    /// Re-hash every entry's outputs against its manifest; fails if any entry is corrupt.
    Verify,
    /// Remove corrupt entries, then entries by the given rules.
    Gc(GcArgs),
}

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Remove entries created longer ago than this (e.g. `7d`, `12h`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub older_than: Option<Duration>,
    /// Then remove the oldest entries until the store fits (e.g. `10G`, `500M`; powers of 1024).
    #[arg(long, value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// Keep only the entries of these pipelines' jobs (repeatable); everything else is removed.
    #[arg(long = "pipeline", value_name = "FILE")]
    pub pipelines: Vec<PathBuf>,
    /// Keep only the keys listed in this file (one per line; `#` comments); combines with `--pipeline`.
    #[arg(long)]
    pub live_keys: Option<PathBuf>,
    /// Print what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Entry point for `rora cache ...`.
pub fn run(args: CacheArgs, cache_dir: Option<PathBuf>, json: bool) -> miette::Result<()> {
    let root = layout::resolve_root(cache_dir.as_deref());
    let out = &mut std::io::stdout().lock();
    match (&args.command, json) {
        (CacheCommand::Ls, true) => ls_json(&root, out, SystemTime::now()),
        _ => run_to(args, &root, out, SystemTime::now()),
    }
}

/// As [`run`], writing to `out`, with the current time given (tests).
pub fn run_to(
    args: CacheArgs,
    root: &Path,
    out: &mut dyn Write,
    now: SystemTime,
) -> miette::Result<()> {
    match args.command {
        CacheCommand::Ls => ls(root, out, now),
        CacheCommand::Verify => verify_all(root, out),
        CacheCommand::Gc(g) => gc_cmd(g, root, out, now),
    }
}

fn ls(root: &Path, out: &mut dyn Write, now: SystemTime) -> miette::Result<()> {
    let store = Store::open_read_only(root);
    let entries = inventory::list(&store).into_diagnostic()?;
    let now_s = unix(now);
    writeln!(
        out,
        "{:<12}  {:<28}  {:<8}  {:>10}  {:>6}  PIPELINE",
        "KEY", "STAGE", "KIND", "SIZE", "AGE"
    )
    .into_diagnostic()?;
    let mut total = 0;
    for e in &entries {
        total += e.disk_size;
        let (kind, age, pipeline) = match &e.manifest {
            Ok(m) => (
                m.kind.clone(),
                human_age(now_s.saturating_sub(m.created)),
                m.pipeline.clone().unwrap_or_default(),
            ),
            Err(d) => ("?".into(), "?".into(), format!("CORRUPT: {d}")),
        };
        let key = e.key.get(..12).unwrap_or(&e.key);
        writeln!(
            out,
            "{key:<12}  {:<28}  {kind:<8}  {:>10}  {age:>6}  {pipeline}",
            e.stage(),
            human_bytes(e.disk_size)
        )
        .into_diagnostic()?;
    }
    writeln!(
        out,
        "{} entries, {} in {}",
        entries.len(),
        human_bytes(total),
        root.display()
    )
    .into_diagnostic()
}

/// `rora --format json cache ls`: one JSON document, `{"cache", "entries": [{key, stage, kind,
/// bytes, created, age_s, pipeline, corrupt}], "bytes"}` (full keys, sizes in bytes, times in unix
/// seconds).
pub fn ls_json(root: &Path, out: &mut dyn Write, now: SystemTime) -> miette::Result<()> {
    let store = Store::open_read_only(root);
    let entries = inventory::list(&store).into_diagnostic()?;
    let now_s = unix(now);
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| match &e.manifest {
            Ok(m) => serde_json::json!({
                "key": e.key, "stage": e.stage(), "kind": m.kind, "bytes": e.disk_size,
                "created": m.created, "age_s": now_s.saturating_sub(m.created),
                "pipeline": m.pipeline, "corrupt": null,
            }),
            Err(d) => serde_json::json!({
                "key": e.key, "stage": e.stage(), "kind": null, "bytes": e.disk_size,
                "created": null, "age_s": null, "pipeline": null, "corrupt": d.to_string(),
            }),
        })
        .collect();
    let doc = serde_json::json!({
        "cache": root,
        "entries": list,
        "bytes": entries.iter().map(|e| e.disk_size).sum::<u64>(),
    });
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&doc).into_diagnostic()?
    )
    .into_diagnostic()
}

fn verify_all(root: &Path, out: &mut dyn Write) -> miette::Result<()> {
    let store = Store::open_read_only(root);
    let verdicts = verify::verify(&store).into_diagnostic()?;
    let mut bad = 0;
    for v in &verdicts {
        if let Err(d) = &v.result {
            bad += 1;
            writeln!(out, "CORRUPT  {}  {}: {d}", v.key, v.stage).into_diagnostic()?;
        }
    }
    writeln!(out, "{} entries verified, {bad} corrupt", verdicts.len()).into_diagnostic()?;
    if bad > 0 {
        return Err(miette!(
            help = "`rora run` recomputes corrupt entries; `rora cache gc` removes them",
            "{bad} corrupt cache entries in {}",
            root.display()
        ));
    }
    Ok(())
}

fn gc_cmd(args: GcArgs, root: &Path, out: &mut dyn Write, now: SystemTime) -> miette::Result<()> {
    let mut live: Option<BTreeSet<String>> = match &args.live_keys {
        Some(path) => Some(read_keys(path)?),
        None => None,
    };
    for p in &args.pipelines {
        live.get_or_insert_with(BTreeSet::new)
            .extend(pipeline_keys(p)?);
    }
    let policy = GcPolicy {
        older_than: args.older_than,
        max_size: args.max_size,
        live,
        dry_run: args.dry_run,
    };
    let store = Store::open(root).into_diagnostic()?;
    let report = gc(&store, &policy, now).into_diagnostic()?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for r in &report.removed {
        writeln!(
            out,
            "{verb}  {}  {}  {}  ({})",
            r.key,
            r.stage,
            human_bytes(r.bytes),
            r.reason.as_str()
        )
        .into_diagnostic()?;
    }
    for k in &report.busy {
        writeln!(out, "busy     {k}  (being computed; kept)").into_diagnostic()?;
    }
    writeln!(
        out,
        "{verb} {} entries ({}); kept {} ({})",
        report.removed.len(),
        human_bytes(report.freed()),
        report.kept,
        human_bytes(report.kept_bytes)
    )
    .into_diagnostic()
}

/// The keys of every job of a pipeline. A pipeline that does not check is an error: collecting
/// garbage against a broken live set would delete what the user meant to keep.
fn pipeline_keys(path: &Path) -> miette::Result<BTreeSet<String>> {
    let checked = crate::check::check_file(path)
        .map_err(|e| miette!("cannot read pipeline {}: {e}", path.display()))?;
    let Some(pipeline) = checked.pipeline else {
        let text = crate::diag::render(
            &checked.file,
            &checked.diagnostics,
            crate::diag::Format::Plain,
        );
        return Err(miette!(
            "pipeline {} does not check; nothing removed\n{text}",
            path.display()
        ));
    };
    let plan = crate::plan::plan_with(
        &pipeline,
        &mut crate::plan::DigestMemo::new(),
        &mut crate::hub::LazyHub::from_env(),
    )
    .map_err(|e| miette!("cannot plan {}: {e}; nothing removed", path.display()))?;
    Ok(plan.jobs.iter().map(|j| j.key.hex().to_string()).collect())
}

fn read_keys(path: &Path) -> miette::Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| miette!("cannot read live keys {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// `10G`, `500M`, `1.5GiB`, `4096`: suffixes K, M, G, T (optionally + `B` or `iB`) are powers of 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected e.g. 10G or 500M"))?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("invalid size unit in {text:?}: use K, M, G or T")),
    };
    Ok((value * mult as f64) as u64)
}

fn human_age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
