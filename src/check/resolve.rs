//! The resolve pass: names and variables. Reports duplicate stages, references to unknown stages or
//! stages of the wrong kind, cycles (with the path), duplicate / unknown / unused variables, zip
//! axes of unequal length, and variable values that do not fit a place they are used.
//! Guarantees to the next pass (when no errors): a [`Pipeline`] whose stages are in topological
//! order, every reference resolves to a stage of an allowed kind, every variable is declared and
//! every value of it fits every use.

use std::collections::{BTreeMap, BTreeSet};

use super::value::fits;
use crate::diag::{Code, Diagnostic, Diagnostics, suggest_help};
use crate::ir::{Arg, Pipeline, PipelineDecl, StageDecl, VarKind};
use crate::schema::{Kind, Ty};

/// The allowed kinds of a reference property (`model`, or `calibration.data` for a child property).
pub fn ref_kinds(kind: Kind, key: &str) -> &'static [Kind] {
    let spec = crate::stages::spec(kind);
    let ty = match key.split_once('.') {
        Some((c, p)) => spec.child(c).and_then(|c| c.prop(p)).map(|p| p.ty),
        None => spec.prop(key).map(|p| p.ty),
    };
    match ty {
        Some(Ty::Stage(k)) => k,
        _ => &[],
    }
}

pub fn resolve(decl: PipelineDecl, diags: &mut Diagnostics) -> Option<Pipeline> {
    let before = diags.error_count();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (i, s) in decl.stages.iter().enumerate() {
        if let Some(&j) = index.get(&s.name) {
            diags.push(
                Diagnostic::error(
                    Code::DuplicateStage,
                    format!("a stage named `{}` already exists", s.name),
                )
                .label(s.name_span, "declared again here")
                .label(decl.stages[j].name_span, "first declared here")
                .help("stage names must be unique; rename one"),
            );
        } else {
            index.insert(s.name.clone(), i);
        }
    }
    check_refs(&decl.stages, &index, diags);
    check_vars(&decl, diags);
    if diags.error_count() > before {
        return None;
    }
    let order = topo_order(&decl.stages, &index, diags)?;
    let mut slots: Vec<Option<StageDecl>> = decl.stages.into_iter().map(Some).collect();
    let stages: Vec<StageDecl> = order.iter().filter_map(|&i| slots[i].take()).collect();
    let index = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    Some(Pipeline {
        file: decl.file,
        stages,
        axes: decl.axes,
        params: decl.params,
        index,
    })
}

fn check_refs(stages: &[StageDecl], index: &BTreeMap<String, usize>, diags: &mut Diagnostics) {
    let names: Vec<&str> = index.keys().map(String::as_str).collect();
    for s in stages {
        for (key, r) in &s.refs {
            let allowed = ref_kinds(s.kind, key);
            let Some(&t) = index.get(&r.name) else {
                diags.push(
                    Diagnostic::error(
                        Code::UnknownStage,
                        format!(
                            "{} `{}` refers to `{}`, which is not a stage",
                            s.kind.name(),
                            s.name,
                            r.name
                        ),
                    )
                    .label(r.span, "unknown stage")
                    .help(suggest_help(&r.name, &names, "stages are")),
                );
                continue;
            };
            let target = &stages[t];
            if allowed.contains(&target.kind) {
                continue;
            }
            let kinds: Vec<&str> = allowed.iter().map(|k| k.name()).collect();
            let (code, help) = match crate::stages::get(s.kind).and_then(|k| k.wrong_ref(key)) {
                Some((code, help)) => (code, help.to_string()),
                None => (
                    Code::WrongStageKind,
                    format!("{key}= takes a {} stage", kinds.join(" or ")),
                ),
            };
            diags.push(
                Diagnostic::error(
                    code,
                    format!(
                        "{key}=\"{}\" is a {} stage, but {} `{}` needs a {} stage",
                        r.name,
                        target.kind.name(),
                        s.kind.name(),
                        s.name,
                        kinds.join(" or ")
                    ),
                )
                .label(r.span, format!("a {} stage", target.kind.name()))
                .label(target.name_span, "declared here")
                .help(help),
            );
        }
    }
}

fn check_vars(decl: &PipelineDecl, diags: &mut Diagnostics) {
    let mut seen: BTreeMap<&str, crate::source::Span> = BTreeMap::new();
    let declared = decl
        .axes
        .iter()
        .map(|a| (a.name.as_str(), a.span))
        .chain(decl.params.iter().map(|p| (p.name.as_str(), p.span)));
    for (name, span) in declared {
        if let Some(first) = seen.get(name) {
            diags.push(
                Diagnostic::error(
                    Code::DuplicateSweep,
                    format!("variable `{name}` is declared twice"),
                )
                .label(span, "declared again here")
                .label(*first, "first declared here")
                .help("merge the values into one declaration"),
            );
        } else {
            seen.insert(name, span);
        }
    }
    let mut groups: BTreeMap<usize, Vec<&crate::ir::Axis>> = BTreeMap::new();
    for a in &decl.axes {
        groups.entry(a.group).or_default().push(a);
    }
    for axes in groups.values() {
        let n = axes[0].values.len();
        for a in axes.iter().skip(1).filter(|a| a.values.len() != n) {
            diags.push(
                Diagnostic::error(
                    Code::ZipLength,
                    format!(
                        "zip axis `{}` has {} values but `{}` has {n}",
                        a.name,
                        a.values.len(),
                        axes[0].name
                    ),
                )
                .label(a.span, format!("{} values", a.values.len()))
                .label(axes[0].span, format!("{n} values"))
                .help("zipped axes advance together; give them the same number of values"),
            );
        }
    }
    let sweep_names: Vec<&str> = decl.axes.iter().map(|a| a.name.as_str()).collect();
    let param_names: Vec<&str> = decl.params.iter().map(|p| p.name.as_str()).collect();
    let mut used: BTreeSet<(VarKind, &str)> = BTreeSet::new();
    for s in &decl.stages {
        let spec = crate::stages::spec(s.kind);
        for (fname, occ) in &s.fields {
            let Some(cs) = spec.child(fname) else {
                continue;
            };
            for f in occ {
                let uses = f
                    .args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (a, cs.args.ty(i), fname.to_string()))
                    .chain(
                        f.props
                            .iter()
                            .map(|(p, a)| (a, cs.prop(p).map(|p| p.ty), format!("{fname} {p}="))),
                    );
                for (a, ty, what) in uses {
                    let Arg::Var { kind, name, span } = a else {
                        continue;
                    };
                    used.insert((*kind, name.as_str()));
                    let values: Vec<(crate::ir::Value, crate::source::Span)> = match kind {
                        VarKind::Sweep => match decl.axes.iter().find(|x| &x.name == name) {
                            Some(ax) => ax.values.clone(),
                            None => {
                                diags.push(
                                    Diagnostic::error(
                                        Code::UnknownSweep,
                                        format!("no sweep axis named `{name}`"),
                                    )
                                    .label(*span, "used here")
                                    .help(
                                        match crate::diag::suggest(
                                            name,
                                            sweep_names.iter().copied(),
                                        ) {
                                            Some(s) => format!("did you mean `{s}`?"),
                                            None => format!(
                                                "declare it at top level: sweep {name} <values>"
                                            ),
                                        },
                                    ),
                                );
                                continue;
                            }
                        },
                        VarKind::Param => match decl.params.iter().find(|p| &p.name == name) {
                            Some(p) => vec![(p.value.clone(), p.value_span)],
                            None => {
                                diags.push(
                                    Diagnostic::error(
                                        Code::UnknownParam,
                                        format!("no param named `{name}`"),
                                    )
                                    .label(*span, "used here")
                                    .help(
                                        match crate::diag::suggest(
                                            name,
                                            param_names.iter().copied(),
                                        ) {
                                            Some(s) => format!("did you mean `{s}`?"),
                                            None => format!(
                                                "declare it at top level: param {name} <value>"
                                            ),
                                        },
                                    ),
                                );
                                continue;
                            }
                        },
                    };
                    let Some(ty) = ty else { continue };
                    for (v, vspan) in values {
                        if let Err(m) = fits(&v, &ty, &what) {
                            diags.push(
                                Diagnostic::error(
                                    m.code,
                                    format!("{} (value of `{name}`)", m.message),
                                )
                                .label(vspan, "this value")
                                .label(
                                    *span,
                                    format!("used as `{what}` in {} `{}`", s.kind.name(), s.name),
                                )
                                .help(m.help),
                            );
                        }
                    }
                }
            }
        }
    }
    for a in &decl.axes {
        if !used.contains(&(VarKind::Sweep, a.name.as_str())) {
            diags.push(
                Diagnostic::warning(
                    Code::UnusedSweep,
                    format!("sweep axis `{}` is never used", a.name),
                )
                .label(a.span, "declared here")
                .help(format!(
                    "use it as (sweep)\"{}\" in a stage option, or remove it",
                    a.name
                )),
            );
        }
    }
    for p in &decl.params {
        if !used.contains(&(VarKind::Param, p.name.as_str())) {
            diags.push(
                Diagnostic::warning(
                    Code::UnusedParam,
                    format!("param `{}` is never used", p.name),
                )
                .label(p.span, "declared here")
                .help(format!("use it as (param)\"{}\", or remove it", p.name)),
            );
        }
    }
}

/// Stage indices in dependency order; reports each cycle once with its path.
fn topo_order(
    stages: &[StageDecl],
    index: &BTreeMap<String, usize>,
    diags: &mut Diagnostics,
) -> Option<Vec<usize>> {
    // 0 = unvisited, 1 = on the stack, 2 = done. Iterative DFS: 5,000-stage chains must not overflow.
    let mut state = vec![0u8; stages.len()];
    let mut order = Vec::with_capacity(stages.len());
    let mut cyclic = false;
    let deps = |i: usize| -> Vec<usize> {
        stages[i]
            .refs
            .values()
            .filter_map(|r| index.get(&r.name).copied())
            .collect()
    };
    for root in 0..stages.len() {
        if state[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, Vec<usize>)> = vec![(root, deps(root))];
        state[root] = 1;
        while let Some((node, pending)) = stack.last_mut() {
            let node = *node;
            match pending.pop() {
                Some(next) if state[next] == 0 => {
                    state[next] = 1;
                    let d = deps(next);
                    stack.push((next, d));
                }
                Some(next) if state[next] == 1 => {
                    cyclic = true;
                    let start = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                    let path: Vec<usize> = stack[start..].iter().map(|(n, _)| *n).collect();
                    let mut text: Vec<&str> =
                        path.iter().map(|&i| stages[i].name.as_str()).collect();
                    text.push(&stages[next].name);
                    let mut d = Diagnostic::error(
                        Code::Cycle,
                        format!(
                            "stages depend on each other in a cycle: {}",
                            text.join(" -> ")
                        ),
                    );
                    for (k, &i) in path.iter().enumerate() {
                        let to = path.get(k + 1).copied().unwrap_or(next);
                        if let Some(r) = stages[i].refs.values().find(|r| r.name == stages[to].name)
                        {
                            d = d.label(
                                r.span,
                                format!("{} needs {}", stages[i].name, stages[to].name),
                            );
                        }
                    }
                    diags.push(d.help("a stage can only use the outputs of stages that do not (transitively) use it"));
                }
                Some(_) => {}
                None => {
                    state[node] = 2;
                    order.push(node);
                    stack.pop();
                }
            }
        }
    }
    (!cyclic).then_some(order)
}
