//! `rora check`: bytes -> [`Pipeline`] through four passes, each reporting every problem it finds:
//!
//! ```text
//! syntax (crate::syntax)  bytes -> KdlDocument        UTF-8, size, nesting depth, KDL grammar
//! shape                   KdlDocument -> PipelineDecl  names, arity, literal types and ranges vs the registry
//! resolve                 PipelineDecl -> Pipeline     references, cycles, variables and their values
//! semantic                Pipeline (checked)           cross-option and cross-stage rules, local files
//! ```
//! A pass runs only when the previous one found no errors (warnings do not stop it). The result
//! holds the pipeline only when there are no errors.

pub mod context;
pub mod modelinfo;
pub mod resolve;
pub mod semantic;
pub mod shape;
pub mod task;
pub mod value;

use std::path::Path;

use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::Pipeline;
use crate::source::SourceFile;

/// What `check` found.
#[derive(Debug)]
pub struct CheckResult {
    pub file: SourceFile,
    /// Every diagnostic, in the order found.
    pub diagnostics: Vec<Diagnostic>,
    /// The checked pipeline, when there are no errors.
    pub pipeline: Option<Pipeline>,
}

impl CheckResult {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Check a pipeline given as bytes; `path` names it and anchors relative paths.
pub fn check_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> CheckResult {
    let mut diags = Diagnostics::new();
    let file = crate::syntax::decode(path.as_ref(), bytes, &mut diags);
    let pipeline = if diags.has_errors() {
        None
    } else {
        run_passes(&file, &mut diags)
    };
    CheckResult {
        file,
        diagnostics: diags.into_vec(),
        pipeline,
    }
}

fn run_passes(file: &SourceFile, diags: &mut Diagnostics) -> Option<Pipeline> {
    let doc = crate::syntax::parse(file, diags)?;
    let kinds: Vec<&'static crate::schema::KindSpec> =
        crate::stages::writable().iter().map(|s| s.spec()).collect();
    let decl = shape::shape(file, &doc, &kinds, diags);
    if diags.has_errors() {
        return None;
    }
    let pipeline = resolve::resolve(decl, diags)?;
    semantic::semantic(&pipeline, diags);
    (!diags.has_errors()).then_some(pipeline)
}

/// Check a pipeline file on disk.
pub fn check_file(path: impl AsRef<Path>) -> std::io::Result<CheckResult> {
    let bytes = std::fs::read(path.as_ref())?;
    Ok(check_bytes(path, &bytes))
}
