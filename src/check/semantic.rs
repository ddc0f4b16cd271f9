//! The semantic pass: cross-option and cross-stage rules, checked at every sweep point of each
//! stage (over the axes it uses directly). The rules of each kind live in its stage module
//! (`crate::stages::<kind>`: model/data sources, fixed scale without a value, targets and regexes,
//! ranks and layer indices against the model config when it is at hand, batch divisibility,
//! pruning amounts, DoRA + quantized base + merge); this pass runs them, with the rules every kind
//! shares: options that exclude each other and local files that must exist.

use std::collections::BTreeSet;

use super::context::CheckCx;
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::ir::bind::{BoundStage, bind};
use crate::ir::points::points;
use crate::ir::{Pipeline, StageDecl, Value};
use crate::schema::Ty;
use crate::stages::{self, Stage};

/// Sweep points checked per stage (each axis value is still checked against its type by resolve).
const POINT_CAP: usize = 4096;

pub fn semantic(p: &Pipeline, diags: &mut Diagnostics) {
    let mut cx = CheckCx::new(p, diags);
    for stage in &p.stages {
        let Some(kind) = stages::get(stage.kind) else {
            continue;
        };
        conflicts(&mut cx, kind, stage);
        kind.check_decl(&mut cx, stage);
        let used: BTreeSet<String> = stage
            .vars()
            .filter(|v| v.0 == crate::ir::VarKind::Sweep)
            .map(|v| v.1.to_string())
            .collect();
        let pts = points(&p.axes, &used, POINT_CAP)
            .unwrap_or_else(|| points(&p.axes, &BTreeSet::new(), 1).unwrap_or_default());
        let single = pts.len() == 1;
        for pt in &pts {
            let Ok(b) = bind(stage, kind.spec(), pt, &p.params) else {
                continue;
            };
            files(&mut cx, kind, stage, &b);
            resources(&mut cx, stage, &b);
            // the shape pass lets through only stages that bind to params, except an option
            // required at some sweep points only (`ChildSpec::optional_when` on a swept option)
            let params = match kind.params(&b, &p.file) {
                Ok(params) => params,
                Err(e) => {
                    // other params errors follow a diagnostic the shape pass already gave
                    let Some(spec) = kind
                        .spec()
                        .child(&e.option)
                        .filter(|c| !c.optional_when.is_empty())
                    else {
                        continue;
                    };
                    let at: Vec<String> = pt.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    cx.push(
                        Diagnostic::error(
                            Code::MissingChild,
                            format!(
                                "{} `{}` needs the option `{}` at {}",
                                stage.kind.name(),
                                stage.name,
                                e.option,
                                at.join(", ")
                            ),
                        )
                        .label(stage.name_span, format!("no `{}` in this stage", e.option))
                        .help(format!("add `{}`: {}", e.option, spec.doc)),
                    );
                    continue;
                }
            };
            kind.check(&mut cx, stage, &b, &params, single);
        }
    }
}

/// Options that exclude each other, as written (independent of sweep points).
fn conflicts(cx: &mut CheckCx, kind: &dyn Stage, stage: &StageDecl) {
    for g in kind.conflicts() {
        let present: Vec<&str> = g
            .iter()
            .copied()
            .filter(|n| stage.fields.contains_key(*n))
            .collect();
        if present.len() > 1 {
            let mut d = Diagnostic::error(
                Code::ConflictingOptions,
                format!(
                    "{} `{}` gives both {}",
                    stage.kind.name(),
                    stage.name,
                    present
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            );
            for n in &present {
                d = d.label(cx.span_of(stage, n), format!("`{n}` here"));
            }
            cx.push(d.help(format!("keep one of {}", present.join(", "))));
        }
    }
}

/// A stage's `resources`: memory and time in forms the Slurm executor can submit (checked at
/// each sweep point, so a swept value is checked too).
fn resources(cx: &mut CheckCx, stage: &StageDecl, b: &BoundStage) {
    use crate::slurm::units::{parse_mem, parse_minutes};
    let Some(f) = stage.field("resources") else {
        return;
    };
    type Parse = fn(&str) -> Result<u64, String>;
    let checks: [(&str, Parse); 2] = [("mem", parse_mem), ("time", parse_minutes)];
    for (name, parse) in checks {
        let Some(Value::Str(text)) = b.prop("resources", name) else {
            continue;
        };
        if let Err(e) = parse(text) {
            let span = f.props.get(name).map_or(f.name_span, |a| a.span());
            cx.push(
                Diagnostic::error(Code::BadResource, format!("resources {e}"))
                    .label(span, "not a size or duration rora can submit")
                    .help(if name == "mem" {
                        "write `64G`, `512M`, or MiB (`4096`)"
                    } else {
                        "write `48h`, `90m`, `1day 2h`, or minutes (`90`)"
                    }),
            );
        }
    }
}

/// Local files, directories and globs must exist (relative to the pipeline file).
fn files(cx: &mut CheckCx, kind: &dyn Stage, stage: &StageDecl, b: &BoundStage) {
    for c in kind.spec().children {
        let Some(bound) = b.fields.get(c.name) else {
            continue;
        };
        let Some(decl) = stage.fields.get(c.name) else {
            continue;
        };
        for (occ, f) in decl.iter().zip(bound) {
            for (i, v) in f.args.iter().enumerate() {
                let (Some(ty @ (Ty::Path | Ty::Glob)), Value::Str(rel)) = (c.args.ty(i), v) else {
                    continue;
                };
                let span = occ.args.get(i).map_or(occ.name_span, |a| a.span());
                let full = cx.p.file.resolve(rel);
                let found = match ty {
                    Ty::Glob => glob::glob(&full.to_string_lossy())
                        .map(|mut g| g.any(|e| e.is_ok()))
                        .unwrap_or(false),
                    _ => full.exists(),
                };
                if !found {
                    let what = if ty == Ty::Glob {
                        "matches no file"
                    } else {
                        "does not exist"
                    };
                    cx.push(
                        Diagnostic::error(
                            Code::MissingFile,
                            format!("`{rel}` {what} (looked at {})", full.display()),
                        )
                        .label(span, "relative to the pipeline file's directory")
                        .help("fix the path, or use a hub source (hub \"org/name\")"),
                    );
                }
            }
        }
    }
}
