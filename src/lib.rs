//! rora: fine-tune LLaMA-family models with low-rank adapters (LoRA `alpha/r`, RoRA `alpha/sqrt(r)`,
//! DoRA, fixed scale), driven by KDL pipelines, with a content-addressed cache of every stage.
//!
//! ```text
//! SourceFile -> KdlDocument -> [shape] -> PipelineDecl -> [resolve, semantic] -> Pipeline   (`check`)
//! Pipeline -> [expand sweeps, key] -> Plan { jobs, deps, StageKey per job }                  (`plan`)
//! Plan -> Executor: lookup(key) -> Hit | Miss(reservation) -> runner -> commit              (`run`)
//! ```
//!
//! `unsafe` is denied outside [`cpu`] (the kernels) and [`sys`] (read-only file maps, CPU time).
//! ARCHITECTURE.md maps the modules.

#![deny(unsafe_code)]

pub mod adapter;
pub mod cache;
pub mod check;
pub mod cli;
pub mod cpu;
pub mod device;
pub mod diag;
pub mod eval;
pub mod exec;
pub mod fsx;
pub mod hub;
pub mod ir;
pub mod lm;
pub mod model;
pub mod plan;
pub mod prune;
pub mod run;
pub mod schema;
pub mod slurm;
pub mod source;
pub mod stages;
pub mod syntax;
pub mod sys;
pub mod task;
pub mod train;
