//! The `report` stage: every run of the `from` stage (all its sweep points) as one table (method x
//! rank (x seed), tasks + average, the effective scale beside each row) and plots (accuracy vs
//! rank, training loss curves), as Markdown, CSV and JSON, PNG and SVG. It is the one kind that
//! gathers every job of the stage it references ([`Stage::collects`]).

mod run;

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::params::Need;
use super::params::{ParamError, StageParams, abs_path};
use super::stage::Stage;
use crate::cache::Entry;
use crate::eval::report::Compare;
use crate::exec::progress::Progress;
use crate::ir::bound::BoundStage;
use crate::plan::job::Job;
use crate::run::artifacts::adapter_config;
use crate::run::context::JobCx;
use crate::run::error::{Result as RunResult, RunError};
use crate::schema::registry::{child, def, one, repeat, req_prop, unkeyed};
use crate::schema::{Args, Default, Kind, KindSpec, Ty};
use crate::source::SourceFile;
use crate::stages::adapter::{AdapterParams, settings_of};
use crate::stages::train::TrainParams;

pub static SPEC: KindSpec = KindSpec {
    kind: Kind::Report,
    doc: "Collect the results of every sweep point of a stage into tables and plots.",
    version: 2,
    props: &[req_prop(
        "from",
        Ty::Stage(&[Kind::Eval]),
        "The eval stage whose runs are reported (accuracy, and the loss curves of the train stages behind them).",
    )],
    children: &[
        child("table", "A table with one row per sweep point.", Args::None),
        repeat(one("plot", "A plot.", Ty::Choice(Plot::NAMES))),
        def(
            child(
                "format",
                "Table formats.",
                Args::Many {
                    ty: Ty::Choice(TableFormat::NAMES),
                    min: 1,
                },
            ),
            Default::Strs(&["md"]),
        ),
        def(
            one(
                "baseline",
                "Paired comparisons: the method every other run is compared with, on the same \
                 items (same rank and seed; or the one run of that method, e.g. `base`).",
                Ty::Str,
            ),
            Default::Str("lora"),
        ),
        def(
            one(
                "resamples",
                "Paired comparisons: bootstrap resamples of the items.",
                Ty::int(100, 1_000_000),
            ),
            Default::Int(10000),
        ),
        def(
            one(
                "bootstrap-seed",
                "Paired comparisons: seed of the bootstrap.",
                Ty::nonneg_int(),
            ),
            Default::Int(0),
        ),
        unkeyed(one(
            "out",
            "Also copy the report into this directory (relative to the pipeline file).",
            Ty::Str,
        )),
        crate::schema::registry::RESOURCES,
    ],
};

crate::choice_enum! {
    pub enum Plot {
        AccuracyVsRank = "accuracy-vs-rank",
        LossCurves = "loss-curves",
        ScaleVsRank = "scale-vs-rank",
        AccuracyVsScale = "accuracy-vs-scale",
    }
}

crate::choice_enum! {
    pub enum TableFormat {
        Md = "md",
        Csv = "csv",
        Json = "json",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportParams {
    pub table: bool,
    pub compare: Compare,
    pub plots: Vec<Plot>,
    pub formats: Vec<TableFormat>,
    pub out: Option<PathBuf>,
}

pub struct Report;

impl Stage for Report {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn collects(&self) -> bool {
        true
    }

    fn params(&self, b: &BoundStage, file: &SourceFile) -> Result<StageParams, ParamError> {
        let plots = b
            .all("plot")
            .iter()
            .filter_map(|f| f.args.first()?.as_str())
            .map(|p| Plot::from_name(p).ok_or_else(|| b.missing_choice("plot")))
            .collect::<Result<Vec<_>, _>>()?;
        let formats = b
            .strs("format")
            .iter()
            .map(|f| TableFormat::from_name(f).ok_or_else(|| b.missing_choice("format")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StageParams::new(
            Kind::Report,
            ReportParams {
                table: b.has("table"),
                compare: Compare {
                    baseline: b.str("baseline").unwrap_or_default().to_string(),
                    resamples: b.need_usize("resamples")?,
                    seed: b.int("bootstrap-seed").unwrap_or_default().max(0) as u64,
                },
                plots,
                formats,
                out: b.str("out").map(|d| abs_path(file, d)),
            },
        ))
    }

    fn run(
        &self,
        cx: &JobCx<'_>,
        out: &Path,
        _progress: &dyn Progress,
    ) -> Result<serde_json::Value, RunError> {
        let mut runs = Vec::new();
        for (dep, entry) in cx.job.deps.iter().zip(cx.inputs) {
            runs.push(run_source(cx, cx.plan.job(dep.job), entry)?);
        }
        run::run(cx.params::<ReportParams>()?, &runs, out)
    }
}

/// What the report needs about one eval job: the train job behind its model, if any.
fn run_source<'a>(
    cx: &JobCx<'a>,
    eval_job: &'a Job,
    eval_entry: &Entry,
) -> RunResult<run::RunSource<'a>> {
    let (mut train_job, mut adapter_job) = (None, None);
    let mut j = cx.input_job(eval_job, "model")?;
    loop {
        match j.kind {
            Kind::Train => {
                train_job = Some(j);
                adapter_job = Some(cx.input_job(j, "adapter")?);
                break;
            }
            // a loaded adapter, evaluated or merged as it is
            Kind::Adapter => {
                adapter_job = Some(j);
                break;
            }
            Kind::Merge => j = cx.input_job(j, "from")?,
            _ => break,
        }
    }
    let (adapter, params_pct) = match adapter_job {
        Some(a) => {
            let entry = cx.entry_of(a)?;
            let settings = match a.params.get::<AdapterParams>().and_then(|p| p.settings()) {
                Some(s) => s.clone(),
                // a hub adapter: what it is was read at run time
                None => settings_of(&adapter_config(&entry)?),
            };
            let pct = entry.manifest().meta["outputs"]["trainable_percent"].as_f64();
            (Some(settings), pct)
        }
        None => (None, None),
    };
    let seed = train_job.and_then(|t| t.params.get::<TrainParams>().map(|tp| tp.seed));
    let train_out = match train_job {
        Some(t) => Some(cx.entry_of(t)?.out_dir()),
        None => None,
    };
    Ok(run::RunSource {
        eval_out: eval_entry.out_dir(),
        eval_job,
        train_out,
        adapter,
        train_seed: seed,
        params_pct,
    })
}

/// The report stage's comparison settings at their schema defaults (for `rora report`, which
/// has no pipeline).
pub fn default_compare() -> Compare {
    let d = |name: &str| SPEC.child(name).and_then(|c| c.default);
    let int = |name: &str| match d(name) {
        Some(Default::Int(i)) => i.max(0) as u64,
        _ => 0,
    };
    Compare {
        baseline: match d("baseline") {
            Some(Default::Str(s)) => s.to_string(),
            _ => String::new(),
        },
        resamples: int("resamples") as usize,
        seed: int("bootstrap-seed"),
    }
}

#[cfg(test)]
mod tests {
    use crate::check::check_bytes;

    /// The runner reads each run's eval summary: a report of a train stage is refused by the
    /// checker, not at run time.
    #[test]
    fn a_report_takes_an_eval_stage() {
        let src = "model \"m\" {\n    random\n}\ndata \"d\" {\n    hub \"org/d\"\n}\nadapter \"a\" model=\"m\" {\n    rank 2\n}\ntrain \"t\" adapter=\"a\" data=\"d\" {\n    steps 1\n}\nreport \"r\" from=\"t\" {\n    table\n}\n";
        let r = check_bytes("p.kdl", src.as_bytes());
        assert!(r.has_errors());
        let text = format!("{:?}", r.diagnostics);
        assert!(text.contains("eval"), "{text}");
    }
}
