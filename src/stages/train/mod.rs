//! The `train` stage: the adapter stage's fresh adapter trained with AdamW on the tokenized data
//! (adapter parameters only; the base stays frozen). Checkpoints live in the key's resume dir,
//! so a killed run resumes; its memory estimate is what `rora plan` prints per job.

pub mod memory;
mod run;

use std::path::Path;

use serde::Serialize;

pub use run::config;

use super::params::Need;
use super::params::{ParamError, StageParams};
use super::stage::Stage;
use crate::check::context::CheckCx;
use crate::diag::{Code, Diagnostic};
use crate::exec::progress::Progress;
use crate::ir::StageDecl;
use crate::ir::bound::BoundStage;
use crate::plan::job::{Job, Plan, TOKENS_ROLE};
use crate::plan::memory::JobMemory;
use crate::run::context::JobCx;
use crate::run::error::RunError;
use crate::schema::registry::{def, def_prop, one, prop, props, req_prop, unkeyed};
use crate::schema::{Default, Kind, KindSpec, Ty};
use crate::source::SourceFile;
use crate::train::Schedule;

pub static SPEC: KindSpec = KindSpec {
    kind: Kind::Train,
    doc: "Train an adapter on a dataset with AdamW (adapter parameters only; the base stays frozen).",
    version: 1,
    props: &[
        req_prop(
            "adapter",
            Ty::Stage(&[Kind::Adapter]),
            "The adapter to train.",
        ),
        req_prop("data", Ty::Stage(&[Kind::Data]), "The training data."),
    ],
    children: &[
        def(
            one(
                "epochs",
                "Passes over the data (ignored when steps is given).",
                Ty::Float {
                    min: 0.0,
                    max: 10000.0,
                    min_open: true,
                    max_open: false,
                },
            ),
            Default::Float(1.0),
        ),
        one(
            "steps",
            "Optimizer steps (overrides epochs).",
            Ty::pos_int(),
        ),
        props(
            def(
                one("batch", "Examples per optimizer step.", Ty::int(1, 65536)),
                Default::Int(16),
            ),
            &[prop(
                "micro",
                Ty::int(1, 65536),
                "Examples per forward pass (gradient accumulation = batch / micro); default = batch.",
            )],
        ),
        def(
            one(
                "lr",
                "Peak learning rate.",
                Ty::Float {
                    min: 0.0,
                    max: 1.0,
                    min_open: true,
                    max_open: false,
                },
            ),
            Default::Float(2e-4),
        ),
        def(
            one("warmup", "Linear warmup steps.", Ty::nonneg_int()),
            Default::Int(0),
        ),
        one(
            "warmup-ratio",
            "Warmup as a fraction of all steps (replaces warmup).",
            Ty::fraction(),
        ),
        def(
            one(
                "schedule",
                "Learning-rate schedule after warmup.",
                Ty::Choice(Schedule::NAMES),
            ),
            Default::Str("linear"),
        ),
        def(
            one(
                "weight-decay",
                "AdamW decoupled weight decay.",
                Ty::Float {
                    min: 0.0,
                    max: 1.0,
                    min_open: false,
                    max_open: false,
                },
            ),
            Default::Float(0.0),
        ),
        def(
            one(
                "grad-clip",
                "Clip the global gradient L2 norm to this value.",
                Ty::pos_float(),
            ),
            Default::Float(1.0),
        ),
        props(
            def(
                one("optimizer", "Optimizer.", Ty::Choice(Optimizer::NAMES)),
                Default::Str("adamw"),
            ),
            &[
                def_prop(
                    "beta1",
                    Ty::fraction(),
                    "First-moment decay.",
                    Default::Float(0.9),
                ),
                def_prop(
                    "beta2",
                    Ty::fraction(),
                    "Second-moment decay.",
                    Default::Float(0.999),
                ),
                def_prop(
                    "eps",
                    Ty::Float {
                        min: 0.0,
                        max: 1.0,
                        min_open: true,
                        max_open: true,
                    },
                    "Denominator epsilon.",
                    Default::Float(1e-8),
                ),
            ],
        ),
        def(
            one("seed", "Seed for data order and dropout.", Ty::nonneg_int()),
            Default::Int(42),
        ),
        unkeyed(one(
            "checkpoint-every",
            "Save a resumable checkpoint every N steps.",
            Ty::pos_int(),
        )),
        one(
            "eval-every",
            "Validation loss every N steps.",
            Ty::pos_int(),
        ),
        crate::schema::registry::RESOURCES,
    ],
};

crate::choice_enum! {
    pub enum Optimizer {
        AdamW = "adamw",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Duration {
    Steps(u64),
    Epochs(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Warmup {
    Steps(u64),
    Ratio(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainParams {
    pub duration: Duration,
    pub batch: usize,
    pub micro_batch: usize,
    pub lr: f64,
    pub warmup: Warmup,
    pub schedule: Schedule,
    pub optimizer: Optimizer,
    pub weight_decay: f64,
    pub grad_clip: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub seed: u64,
    pub checkpoint_every: Option<u64>,
    pub eval_every: Option<u64>,
}

pub struct Train;

impl Stage for Train {
    fn accelerated(&self) -> bool {
        true
    }

    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn params(&self, b: &BoundStage, _file: &SourceFile) -> Result<StageParams, ParamError> {
        let batch = b.need_usize("batch")?.max(1);
        let duration = match b.int("steps") {
            Some(n) => Duration::Steps(n.max(1) as u64),
            None => Duration::Epochs(b.need_float("epochs")?),
        };
        let warmup = match b.float("warmup-ratio") {
            Some(r) => Warmup::Ratio(r),
            None => Warmup::Steps(b.need_u64("warmup")?),
        };
        let micro = b.prop("batch", "micro").and_then(|v| v.as_i64());
        Ok(StageParams::new(
            Kind::Train,
            TrainParams {
                duration,
                batch,
                // `micro` defaults to the batch: no accumulation
                micro_batch: micro.map_or(batch, |m| m.max(1) as usize),
                lr: b.need_float("lr")?,
                warmup,
                schedule: b.need_choice("schedule", Schedule::from_name)?,
                optimizer: b.need_choice("optimizer", Optimizer::from_name)?,
                weight_decay: b.need_float("weight-decay")?,
                grad_clip: b.need_float("grad-clip")?,
                beta1: b.need_prop_float("optimizer", "beta1")?,
                beta2: b.need_prop_float("optimizer", "beta2")?,
                eps: b.need_prop_float("optimizer", "eps")?,
                seed: b.need_u64("seed")?,
                checkpoint_every: b.int("checkpoint-every").map(|x| x.max(1) as u64),
                eval_every: b.int("eval-every").map(|x| x.max(1) as u64),
            },
        ))
    }

    fn conflicts(&self) -> &'static [&'static [&'static str]] {
        &[&["steps", "epochs"], &["warmup", "warmup-ratio"]]
    }

    fn wrong_ref(&self, prop: &str) -> Option<(Code, &'static str)> {
        (prop == "adapter").then_some((
            Code::TrainNeedsAdapter,
            "declare `adapter \"ad\" model=\"...\" { rank 8 }` and point adapter= at it",
        ))
    }

    fn tokenizes(&self) -> Option<(&'static str, &'static str)> {
        Some(("data", "adapter"))
    }

    fn check(
        &self,
        cx: &mut CheckCx,
        stage: &StageDecl,
        _b: &BoundStage,
        params: &StageParams,
        _single: bool,
    ) {
        let Some(t) = params.get::<TrainParams>() else {
            return;
        };
        if t.batch % t.micro_batch != 0 {
            cx.push(
                Diagnostic::error(
                    Code::BatchNotDivisible,
                    format!(
                        "batch {} is not a multiple of micro={}",
                        t.batch, t.micro_batch
                    ),
                )
                .label(cx.span_of(stage, "batch"), "here")
                .help("use a micro-batch that divides the batch (e.g. batch 16 micro=4)"),
            );
        }
        if let (Duration::Steps(n), Warmup::Steps(w)) = (t.duration, t.warmup)
            && w >= n
            && w > 0
        {
            cx.push(
                Diagnostic::warning(
                    Code::WarmupExceedsSteps,
                    format!("warmup {w} >= steps {n}: the learning rate never reaches its peak"),
                )
                .label(cx.span_of(stage, "warmup"), "here")
                .help("shorten warmup or train longer"),
            );
        }
    }

    fn memory(&self, plan: &Plan, job: &Job) -> Option<JobMemory> {
        memory::train_job_memory(plan, job)
    }

    fn flops(&self, plan: &Plan, job: &Job) -> Option<f64> {
        memory::train_job_flops(plan, job)
    }

    fn run(
        &self,
        cx: &JobCx<'_>,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<serde_json::Value, RunError> {
        let adapter_job = cx.input_job(cx.job, "adapter")?;
        let model = cx.entry_of(cx.base_model_job(adapter_job)?)?;
        let inputs = run::TrainInputs {
            model: &model,
            adapter: cx.input("adapter")?,
            tokens: cx.input(TOKENS_ROLE)?,
            save: crate::stages::adapter::save_options(cx)?,
        };
        let resume = cx.resume_dir()?;
        run::run(
            cx.ctx,
            cx.params::<TrainParams>()?,
            inputs,
            &resume,
            out,
            progress,
        )
    }
}
