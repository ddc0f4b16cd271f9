//! The shape pass: walk the KDL document against the registry and build a [`PipelineDecl`].
//! Reports unknown nodes / options / properties (with did-you-mean), wrong argument counts, literal
//! types and ranges, duplicates, missing required options and properties, misplaced blocks and
//! annotations. Guarantees to the next pass: every kept stage has a name, every kept field and
//! property is declared in the registry with the right arity, literals fit their types, stage
//! references are literal strings (also collected into `refs`, child ones as `child.prop`).

use std::collections::BTreeMap;

use kdl::{KdlDocument, KdlEntry, KdlNode};

use super::value::{Misfit, fits, from_kdl};
use crate::diag::{Code, Diagnostic, Diagnostics, suggest_help};
use crate::ir::{Arg, Axis, Field, ParamDecl, PipelineDecl, StageDecl, StageRef, Value, VarKind};
use crate::schema::{ChildSpec, Kind, KindSpec, PropSpec, TOP_LEVEL, Ty};
use crate::source::{SourceFile, Span};

struct Shape<'a> {
    file: &'a SourceFile,
    diags: &'a mut Diagnostics,
    next_group: usize,
}

/// The writable stage kinds the shape pass knows, in registry order (given by the caller, so this
/// file does not import the registry: task files are shaped here too, below the stage modules).
pub type Kinds<'a> = &'a [&'static KindSpec];

/// Stage names and sweep axes may not contain the characters used in job labels.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub fn shape(
    file: &SourceFile,
    doc: &KdlDocument,
    kinds: Kinds<'_>,
    diags: &mut Diagnostics,
) -> PipelineDecl {
    let mut sh = Shape {
        file,
        diags,
        next_group: 0,
    };
    let mut out = PipelineDecl {
        file: file.clone(),
        stages: vec![],
        axes: vec![],
        params: vec![],
    };
    for node in doc.nodes() {
        sh.top(node, kinds, &mut out);
    }
    out
}

/// A file holding one node of a kind that is not a stage (a task file: `task "name" { .. }`),
/// walked against `spec` like a stage: the same checks, codes and spans. `None` when the node is
/// missing, repeated or has errors.
pub fn shape_single(
    file: &SourceFile,
    doc: &KdlDocument,
    spec: &'static KindSpec,
    diags: &mut Diagnostics,
) -> Option<StageDecl> {
    let mut sh = Shape {
        file,
        diags,
        next_group: 0,
    };
    let kname = spec.kind.name();
    let mut found = None;
    for node in doc.nodes() {
        sh.no_node_annotation(node);
        let span = sh.span(node.name().span());
        if node.name().value() != kname {
            let name = node.name().value();
            sh.err(
                Code::UnknownNode,
                format!("`{name}` is not a node of a {kname} file"),
                span,
                "unknown node",
                format!("a {kname} file holds one `{kname} \"<name>\" {{ .. }}` node"),
            );
        } else if found.is_some() {
            sh.err(
                Code::DuplicateStage,
                format!("a {kname} file holds one `{kname}` node"),
                span,
                "a second one",
                format!("put each {kname} in its own file"),
            );
        } else {
            found = Some(node);
        }
    }
    let Some(node) = found else {
        sh.diags.push(
            Diagnostic::error(
                Code::MissingChild,
                format!("no `{kname}` node in this file"),
            )
            .help(format!("write: {kname} \"my-{kname}\" {{ .. }}")),
        );
        return None;
    };
    let decl = sh.stage(node, spec);
    if sh.diags.has_errors() { None } else { decl }
}

impl Shape<'_> {
    /// A kdl span, trimmed of surrounding whitespace.
    fn span(&self, s: miette::SourceSpan) -> Span {
        let s = self.file.snap(s.into());
        let text = &self.file.text[s.start..s.end()];
        let lead = text.len() - text.trim_start().len();
        let trimmed = text.trim();
        Span::new(s.start + lead, trimmed.len())
    }

    /// The span of a node's head (its name up to the end of its last entry), for labels.
    fn head(&self, node: &KdlNode) -> Span {
        let name = self.span(node.name().span());
        let end = node
            .entries()
            .iter()
            .map(|e| self.span(e.span()).end())
            .max()
            .unwrap_or(name.end());
        Span::new(name.start, end.saturating_sub(name.start))
    }

    fn err(
        &mut self,
        code: Code,
        msg: impl Into<String>,
        span: Span,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::error(code, msg).label(span, label).help(help));
    }

    fn misfit(&mut self, m: Misfit, span: Span) {
        self.diags.push(
            Diagnostic::error(m.code, m.message)
                .label(span, "this value")
                .help(m.help),
        );
    }

    fn no_block(&mut self, node: &KdlNode, what: &str) {
        if let Some(c) = node.children() {
            let span = self.span(c.span());
            self.err(
                Code::UnexpectedBlock,
                format!("{what} takes no children block"),
                span,
                "remove this block",
                "options are leaves: `rank 8`, not `rank { ... }`",
            );
        }
    }

    fn no_node_annotation(&mut self, node: &KdlNode) {
        if let Some(t) = node.ty() {
            let span = self.span(t.span());
            self.err(
                Code::BadAnnotation,
                format!(
                    "type annotation `({})` on a node means nothing here",
                    t.value()
                ),
                span,
                "remove it",
                "annotations are only for values: (sweep)\"name\" or (param)\"name\"",
            );
        }
    }

    /// A literal entry value (annotations are errors here).
    fn literal(&mut self, e: &KdlEntry, what: &str) -> Option<(Value, Span)> {
        let span = self.span(e.span());
        if let Some(t) = e.ty() {
            let (code, help) = match t.value() {
                "sweep" | "param" => (Code::VarNotAllowed, "write the literal value"),
                _ => (Code::BadAnnotation, "remove the annotation"),
            };
            self.err(
                code,
                format!("{what} must be a literal, not `({})`", t.value()),
                span,
                "here",
                help,
            );
            return None;
        }
        match from_kdl(e.value()) {
            Ok(v) => Some((v, span)),
            Err(m) => {
                self.misfit(m, span);
                None
            }
        }
    }

    /// An argument or property value: a literal checked against `ty`, or a variable.
    fn arg(&mut self, e: &KdlEntry, ty: Ty, what: &str) -> Option<Arg> {
        let span = self.span(e.span());
        if let Some(t) = e.ty() {
            let kind = match t.value() {
                "sweep" => VarKind::Sweep,
                "param" => VarKind::Param,
                other => {
                    let help = suggest_help(other, &["sweep", "param"], "annotations");
                    self.err(
                        Code::BadAnnotation,
                        format!("unknown annotation `({other})`"),
                        span,
                        "here",
                        help,
                    );
                    return None;
                }
            };
            if matches!(ty, Ty::Stage(_)) {
                self.err(
                    Code::VarNotAllowed,
                    format!("{what} names a stage and cannot vary"),
                    span,
                    "a variable here",
                    "write the stage name; sweep the options inside stages instead",
                );
                return None;
            }
            return match e.value() {
                kdl::KdlValue::String(name) => Some(Arg::Var {
                    kind,
                    name: name.clone(),
                    span,
                }),
                _ => {
                    self.err(
                        Code::WrongType,
                        "a variable reference needs the variable's name as a string",
                        span,
                        "here",
                        "write (sweep)\"rank\"",
                    );
                    None
                }
            };
        }
        let v = match from_kdl(e.value()) {
            Ok(v) => v,
            Err(m) => {
                self.misfit(m, span);
                return None;
            }
        };
        if let Err(m) = fits(&v, &ty, what) {
            self.misfit(m, span);
            return None;
        }
        Some(Arg::Lit { value: v, span })
    }

    /// Split entries into positional args and properties, reporting duplicate properties.
    fn split<'n>(
        &mut self,
        node: &'n KdlNode,
    ) -> (Vec<&'n KdlEntry>, Vec<(&'n str, &'n KdlEntry)>) {
        let (mut args, mut props) = (vec![], Vec::<(&str, &KdlEntry)>::new());
        for e in node.entries() {
            match e.name() {
                None => args.push(e),
                Some(n) => {
                    if let Some((_, first)) = props.iter().find(|(p, _)| *p == n.value()) {
                        let first = self.span(first.span());
                        let span = self.span(e.span());
                        self.diags.push(
                            Diagnostic::error(
                                Code::DuplicateProperty,
                                format!("property `{}` is given twice", n.value()),
                            )
                            .label(span, "again here")
                            .label(first, "first here")
                            .help("keep one of them"),
                        );
                    } else {
                        props.push((n.value(), e));
                    }
                }
            }
        }
        (args, props)
    }

    fn top(&mut self, node: &KdlNode, kinds: Kinds<'_>, out: &mut PipelineDecl) {
        self.no_node_annotation(node);
        let name = node.name().value();
        match name {
            "sweep" => self.sweep(node, out),
            "zip" => self.zip(node, out),
            "param" => self.param(node, out),
            _ => match kinds.iter().find(|k| k.kind.name() == name).copied() {
                Some(spec) => {
                    if let Some(s) = self.stage(node, spec) {
                        out.stages.push(s);
                    }
                }
                None => {
                    let span = self.span(node.name().span());
                    let all: Vec<&str> = kinds
                        .iter()
                        .map(|s| s.kind.name())
                        .chain(TOP_LEVEL)
                        .collect();
                    let help = suggest_help(name, &all, "top-level nodes are");
                    self.err(
                        Code::UnknownNode,
                        format!("`{name}` is not a stage kind"),
                        span,
                        "unknown node",
                        help,
                    );
                }
            },
        }
    }

    fn axis_values(&mut self, entries: &[&KdlEntry], head: Span, name: &str) -> Vec<(Value, Span)> {
        let values: Vec<_> = entries
            .iter()
            .filter_map(|e| self.literal(e, "a sweep value"))
            .collect();
        if entries.is_empty() {
            self.err(
                Code::EmptySweep,
                format!("sweep axis `{name}` has no values"),
                head,
                "no values",
                format!("list the values: sweep {name} 4 8 16"),
            );
        }
        values
    }

    fn axis_name(
        &mut self,
        e: Option<&&KdlEntry>,
        head: Span,
        what: &str,
    ) -> Option<(String, Span)> {
        let Some(e) = e else {
            self.err(
                Code::MissingName,
                format!("{what} has no name"),
                head,
                "name missing",
                format!("write: {what} rank 4 8 16"),
            );
            return None;
        };
        let (v, span) = self.literal(e, "a variable name")?;
        match v {
            Value::Str(s) if valid_name(&s) => Some((s, span)),
            Value::Str(s) => {
                self.err(
                    Code::InvalidName,
                    format!("`{s}` is not a valid variable name"),
                    span,
                    "here",
                    "use letters, digits, `-`, `_`, `.`",
                );
                None
            }
            other => {
                self.err(
                    Code::WrongType,
                    format!(
                        "a {what} name must be a string, found {}",
                        other.type_name()
                    ),
                    span,
                    "here",
                    "write the name first: sweep rank 4 8 16",
                );
                None
            }
        }
    }

    fn no_props(&mut self, props: &[(&str, &KdlEntry)], what: &str) {
        for (p, e) in props {
            let span = self.span(e.span());
            self.err(
                Code::UnknownProperty,
                format!("{what} takes no property `{p}`"),
                span,
                "unknown property",
                "sweep values are positional: sweep rank 4 8 16",
            );
        }
    }

    fn sweep(&mut self, node: &KdlNode, out: &mut PipelineDecl) {
        self.no_block(node, "sweep");
        let head = self.head(node);
        let (args, props) = self.split(node);
        self.no_props(&props, "sweep");
        let Some((name, span)) = self.axis_name(args.first(), head, "sweep") else {
            return;
        };
        let values = self.axis_values(&args[1..], head, &name);
        out.axes.push(Axis {
            name,
            span,
            values,
            group: self.next_group,
        });
        self.next_group += 1;
    }

    fn zip(&mut self, node: &KdlNode, out: &mut PipelineDecl) {
        let head = self.head(node);
        let (args, props) = self.split(node);
        self.no_props(&props, "zip");
        if let Some(e) = args.first() {
            let span = self.span(e.span());
            self.err(
                Code::Arity,
                "zip takes no arguments; its axes go in its block",
                span,
                "unexpected",
                "zip { rank 4 8; alpha 8 16 }",
            );
        }
        let group = self.next_group;
        self.next_group += 1;
        let Some(children) = node.children() else {
            self.err(
                Code::EmptySweep,
                "zip has no axes",
                head,
                "no block",
                "zip { rank 4 8; alpha 8 16 }",
            );
            return;
        };
        for child in children.nodes() {
            self.no_block(child, "a zip axis");
            let name_span = self.span(child.name().span());
            let name = child.name().value().to_string();
            let (cargs, cprops) = self.split(child);
            self.no_props(&cprops, "a zip axis");
            if !valid_name(&name) {
                self.err(
                    Code::InvalidName,
                    format!("`{name}` is not a valid variable name"),
                    name_span,
                    "here",
                    "use letters, digits, `-`, `_`, `.`",
                );
                continue;
            }
            let values = self.axis_values(&cargs, name_span, &name);
            out.axes.push(Axis {
                name,
                span: name_span,
                values,
                group,
            });
        }
    }

    fn param(&mut self, node: &KdlNode, out: &mut PipelineDecl) {
        self.no_block(node, "param");
        let head = self.head(node);
        let (args, props) = self.split(node);
        self.no_props(&props, "param");
        let Some((name, span)) = self.axis_name(args.first(), head, "param") else {
            return;
        };
        if args.len() != 2 {
            self.err(
                Code::Arity,
                format!(
                    "param `{name}` needs exactly one value, found {}",
                    args.len() - 1
                ),
                head,
                "here",
                format!("param {name} 2e-4"),
            );
            return;
        }
        if let Some((value, value_span)) = self.literal(args[1], "a param value") {
            out.params.push(ParamDecl {
                name,
                span,
                value,
                value_span,
            });
        }
    }

    fn stage(&mut self, node: &KdlNode, spec: &'static KindSpec) -> Option<StageDecl> {
        let kind = spec.kind;
        let head = self.head(node);
        let kname = kind.name();
        let (args, props) = self.split(node);
        let mut ok = true;
        let (name, name_span) = match args.first() {
            None => {
                let span = self.span(node.name().span());
                self.err(
                    Code::MissingName,
                    format!("this {kname} stage has no name"),
                    span,
                    "name missing",
                    format!("write: {kname} \"my-{kname}\" ..."),
                );
                (String::new(), span)
            }
            Some(e) => {
                match self.literal(e, "a stage name") {
                    Some((Value::Str(s), span)) if valid_name(&s) => (s, span),
                    Some((Value::Str(s), span)) => {
                        self.err(Code::InvalidName, format!("`{s}` is not a valid stage name"), span, "here", "use letters, digits, `-`, `_`, `.` (`@`, `,`, `=` appear in job labels)");
                        (String::new(), span)
                    }
                    Some((v, span)) => {
                        self.err(
                            Code::MissingName,
                            format!(
                                "a stage name must be a string, found {} `{v}`",
                                v.type_name()
                            ),
                            span,
                            "here",
                            format!("quote it: {kname} \"{v}\""),
                        );
                        (String::new(), span)
                    }
                    None => (String::new(), head),
                }
            }
        };
        for e in args.iter().skip(1) {
            let span = self.span(e.span());
            self.err(
                Code::Arity,
                format!("a {kname} stage takes one argument (its name)"),
                span,
                "extra argument",
                "inputs are properties (model=\"base\"), options go in the block",
            );
            ok = false;
        }
        let mut refs = BTreeMap::new();
        self.props(spec.props, &props, kname, head, &mut refs, None);
        let mut fields: BTreeMap<String, Vec<Field>> = BTreeMap::new();
        // Options that were written, valid or not (a bad `rank` is not also a missing `rank`).
        let mut present: Vec<&str> = vec![];
        if let Some(children) = node.children() {
            for child in children.nodes() {
                present.push(child.name().value());
                if let Some((cspec, field)) = self.field(spec.children, child, kind, &mut refs) {
                    let list = fields.entry(cspec.name.to_string()).or_default();
                    if let (false, Some(first)) = (cspec.repeat, list.first()) {
                        self.diags.push(
                            Diagnostic::error(Code::DuplicateChild, format!("option `{}` is given twice", cspec.name))
                                .label(field.name_span, "again here")
                                .label(first.name_span, "first here")
                                .help(format!("keep one; to try several values use `sweep {0} ...` and `{0} (sweep)\"{0}\"`", cspec.name)),
                        );
                        continue;
                    }
                    list.push(field);
                }
            }
        }
        for c in spec.children.iter().filter(|c| {
            c.required
                && !present.contains(&c.name)
                && !c.unless.iter().any(|u| present.contains(u))
                && !c.optional_when.iter().any(|(opt, values)| {
                    fields
                        .get(*opt)
                        .and_then(|f| f.first())
                        .and_then(|f| f.args.first())
                        .is_some_and(|a| match a {
                            crate::ir::Arg::Lit { value, .. } => {
                                value.as_str().is_some_and(|v| values.contains(&v))
                            }
                            // a swept option: whether it is needed is decided per sweep point
                            crate::ir::Arg::Var { .. } => true,
                        })
                })
        }) {
            let label = if name.is_empty() { head } else { name_span };
            self.err(
                Code::MissingChild,
                format!("{kname} `{name}` needs the option `{}`", c.name),
                label,
                format!("no `{}` in this stage", c.name),
                format!("add `{}`: {}", c.name, c.doc),
            );
        }
        (ok && !name.is_empty()).then(|| StageDecl {
            kind,
            name,
            span: self.span(node.span()),
            name_span,
            refs,
            fields,
        })
    }

    /// Check properties against specs; stage references go into `refs` (prefixed by `child.`).
    fn props(
        &mut self,
        specs: &[PropSpec],
        props: &[(&str, &KdlEntry)],
        owner: &str,
        head: Span,
        refs: &mut BTreeMap<String, StageRef>,
        child: Option<&str>,
    ) -> BTreeMap<String, Arg> {
        let mut out = BTreeMap::new();
        for (p, e) in props {
            let span = self.span(e.span());
            let Some(ps) = specs.iter().find(|s| s.name == *p) else {
                let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
                let help = if names.is_empty() {
                    format!("{owner} takes no properties")
                } else {
                    suggest_help(p, &names, "properties are")
                };
                self.err(
                    Code::UnknownProperty,
                    format!("{owner} has no property `{p}`"),
                    span,
                    "unknown property",
                    help,
                );
                continue;
            };
            if let Some(a) = self.arg(e, ps.ty, &format!("{owner} {p}=")) {
                if let (
                    Ty::Stage(_),
                    Arg::Lit {
                        value: Value::Str(s),
                        span,
                    },
                ) = (ps.ty, &a)
                {
                    let key = child.map_or(p.to_string(), |c| format!("{c}.{p}"));
                    refs.insert(
                        key,
                        StageRef {
                            name: s.clone(),
                            span: *span,
                        },
                    );
                }
                out.insert(p.to_string(), a);
            }
        }
        for ps in specs
            .iter()
            .filter(|s| s.required && !props.iter().any(|(p, _)| *p == s.name))
        {
            self.err(
                Code::MissingProperty,
                format!("{owner} needs the property `{}=`", ps.name),
                head,
                format!("no `{}=` here", ps.name),
                format!("add {}=\"...\": {}", ps.name, ps.doc),
            );
        }
        out
    }

    fn field(
        &mut self,
        specs: &'static [ChildSpec],
        child: &KdlNode,
        kind: Kind,
        refs: &mut BTreeMap<String, StageRef>,
    ) -> Option<(&'static ChildSpec, Field)> {
        self.no_node_annotation(child);
        let cname = child.name().value();
        let name_span = self.span(child.name().span());
        let Some(spec) = specs.iter().find(|c| c.name == cname) else {
            let names: Vec<&str> = specs.iter().map(|c| c.name).collect();
            let help = match crate::diag::suggest(cname, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("see `rora schema {}` for the options", kind.name()),
            };
            self.err(
                Code::UnknownChild,
                format!("{} has no option `{cname}`", kind.name()),
                name_span,
                format!("not an option of {}", kind.name()),
                help,
            );
            return None;
        };
        self.no_block(child, &format!("option `{cname}`"));
        let head = self.head(child);
        let (args, props) = self.split(child);
        let (min, max) = spec.args.count_range();
        if args.len() < min || args.len() > max {
            let want = match (min, max) {
                (0, 0) => "no arguments".to_string(),
                (a, b) if a == b => format!("{a} argument{}", if a == 1 { "" } else { "s" }),
                (a, _) => format!("at least {a} argument{}", if a == 1 { "" } else { "s" }),
            };
            let help = if max == 1 && args.len() > 1 {
                format!("to try several values: sweep {cname} ...; then {cname} (sweep)\"{cname}\"")
            } else {
                format!("{cname} takes {want}")
            };
            self.err(
                Code::Arity,
                format!("`{cname}` takes {want}, found {}", args.len()),
                head,
                "here",
                help,
            );
            return None;
        }
        let parsed: Vec<Arg> = args
            .iter()
            .enumerate()
            .filter_map(|(i, e)| spec.args.ty(i).and_then(|t| self.arg(e, t, cname)))
            .collect();
        let props = self.props(
            spec.props,
            &props,
            &format!("`{cname}`"),
            head,
            refs,
            Some(cname),
        );
        (parsed.len() == args.len()).then(|| {
            (
                spec,
                Field {
                    span: self.span(child.span()),
                    name_span,
                    args: parsed,
                    props,
                },
            )
        })
    }
}
