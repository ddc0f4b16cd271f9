//! Views of the registry: the text of `rora schema [kind]`, the JSON of `rora schema --format json`,
//! and the generated files in `schemas/` (`<kind>.json` and `pipeline.md`), compared by a drift test
//! and rewritten with `RORA_UPDATE_SCHEMAS=1`.

use serde_json::{Value, json};

use super::types::{Args, ChildSpec, KindSpec, PropSpec, Ty};

fn ty_json(t: &Ty) -> Value {
    match t {
        Ty::Int { min, max } => {
            json!({"type": "integer", "min": min, "max": (*max != i64::MAX).then_some(*max)})
        }
        Ty::Float {
            min,
            max,
            min_open,
            max_open,
        } => json!({
            "type": "number", "min": min, "min_exclusive": min_open,
            "max": max.is_finite().then_some(*max), "max_exclusive": max_open
        }),
        Ty::Str => json!({"type": "string"}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Path => json!({"type": "path"}),
        Ty::Glob => json!({"type": "glob"}),
        Ty::Choice(c) => json!({"type": "string", "enum": c}),
        Ty::Stage(k) => {
            json!({"type": "stage", "kinds": k.iter().map(|k| k.name()).collect::<Vec<_>>()})
        }
    }
}

fn prop_json(p: &PropSpec) -> Value {
    json!({"name": p.name, "doc": p.doc, "value": ty_json(&p.ty), "required": p.required,
           "default": p.default.map(|d| d.describe())})
}

fn args_json(a: &Args) -> Value {
    match a {
        Args::None => json!([]),
        Args::One(t) => json!([ty_json(t)]),
        Args::Many { ty, min } => json!({"repeated": ty_json(ty), "min": min}),
        Args::Fixed(f) => Value::Array(
            f.iter()
                .map(|(n, t)| json!({"name": n, "value": ty_json(t)}))
                .collect(),
        ),
    }
}

fn child_json(c: &ChildSpec) -> Value {
    let mut v = json!({"name": c.name, "doc": c.doc, "args": args_json(&c.args),
           "props": c.props.iter().map(prop_json).collect::<Vec<_>>(),
           "required": c.required, "repeat": c.repeat, "keyed": c.keyed,
           "default": c.default.map(|d| d.describe())});
    if !c.unless.is_empty() {
        v["required_unless"] = json!(c.unless);
    }
    if !c.optional_when.is_empty() {
        v["optional_when"] = c
            .optional_when
            .iter()
            .map(|(o, vals)| json!({"option": o, "values": vals}))
            .collect();
    }
    if !c.default_when.is_empty() {
        v["default_when"] = c
            .default_when
            .iter()
            .map(|(o, vals, d)| json!({"option": o, "values": vals, "default": d.describe()}))
            .collect();
    }
    v
}

/// The JSON description of one kind.
pub fn kind_json(s: &KindSpec) -> Value {
    json!({"kind": s.kind.name(), "doc": s.doc, "version": s.version,
           "props": s.props.iter().map(prop_json).collect::<Vec<_>>(),
           "children": s.children.iter().map(child_json).collect::<Vec<_>>()})
}

fn args_text(a: &Args) -> String {
    match a {
        Args::None => String::new(),
        Args::One(t) => format!(" <{}>", t.describe()),
        Args::Many { ty, min } => format!(
            " <{}>{}",
            ty.describe(),
            if *min == 0 { "*" } else { "..." }
        ),
        Args::Fixed(f) => f
            .iter()
            .map(|(n, t)| format!(" <{n}: {}>", t.describe()))
            .collect(),
    }
}

fn prop_text(p: &PropSpec) -> String {
    let mut s = format!("{}=<{}>", p.name, p.ty.describe());
    if p.required {
        s.push_str(" (required)");
    }
    if let Some(d) = p.default {
        s.push_str(&format!(" (default {})", d.describe()));
    }
    format!("{s}  {}", p.doc)
}

/// `rora schema <kind>` text.
pub fn kind_text(s: &KindSpec) -> String {
    let mut out = format!("{} \"<name>\"", s.kind.name());
    for p in s.props {
        out.push_str(&format!(" {}=\"<stage>\"", p.name));
    }
    out.push_str(&format!(" {{ ... }}\n  {}\n", s.doc));
    for p in s.props {
        out.push_str(&format!("  {}\n", prop_text(p)));
    }
    out.push_str("options:\n");
    for c in s.children {
        let mut flags = vec![];
        if c.required && c.unless.is_empty() {
            flags.push("required".to_string());
        } else if c.required {
            flags.push(format!(
                "required unless {} is given",
                c.unless.join(" or ")
            ));
        }
        if c.repeat {
            flags.push("repeatable".to_string());
        }
        for (o, vals) in c.optional_when {
            flags.push(format!("optional with {o} {}", vals.join(" / ")));
        }
        for (o, vals, d) in c.default_when {
            flags.push(format!(
                "default {} with {o} {}",
                d.describe(),
                vals.join(" / ")
            ));
        }
        if let Some(d) = c.default {
            let other = if c.default_when.is_empty() {
                ""
            } else {
                " otherwise"
            };
            flags.push(format!("default{other} {}", d.describe()));
        }
        if !c.keyed {
            flags.push("not part of the cache key".to_string());
        }
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!("  [{}]", flags.join("; "))
        };
        out.push_str(&format!(
            "  {}{}{}\n      {}\n",
            c.name,
            args_text(&c.args),
            flags,
            c.doc
        ));
        for p in c.props {
            out.push_str(&format!("      {}\n", prop_text(p)));
        }
    }
    out
}

/// The built-in kinds a pipeline may write (what `schemas/` documents).
fn builtin_kinds() -> impl Iterator<Item = &'static dyn crate::stages::Stage> {
    crate::stages::BUILTIN
        .iter()
        .copied()
        .filter(|s| !s.derived())
}

/// `rora schema` with no kind: the top-level forms and every kind.
pub fn all_text() -> String {
    text_of(builtin_kinds())
}

/// The top-level forms and the given kinds (`rora schema` lists registered kinds too).
pub fn text_of<'a>(kinds: impl IntoIterator<Item = &'a dyn crate::stages::Stage>) -> String {
    let mut out = String::from(
        "Top level:\n  sweep <name> <value>...          a sweep axis (cartesian product with the other axes)\n  zip { <name> <value>...; ... }    axes that advance together (equal lengths)\n  param <name> <value>              a named constant\n  Use them in stage options as (sweep)\"name\" / (param)\"name\".\n\n",
    );
    for s in kinds {
        out.push_str(&kind_text(s.spec()));
        out.push('\n');
    }
    out
}

/// The generated files: `(file name, contents)`.
pub fn generated_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = builtin_kinds()
        .map(|s| {
            // invariant: kind_json builds a Value, which always pretty-prints.
            let text =
                serde_json::to_string_pretty(&kind_json(s.spec())).expect("json value prints");
            (format!("{}.json", s.spec().kind.name()), text + "\n")
        })
        .collect();
    // invariant: kind_json builds a Value, which always pretty-prints.
    let task = serde_json::to_string_pretty(&kind_json(&crate::task::spec::SPEC))
        .expect("json value prints");
    files.push(("task.json".to_string(), task + "\n"));
    files.push((
        "task.md".to_string(),
        format!(
            "# rora task file schema\n\nGENERATED from src/task/spec.rs by `RORA_UPDATE_SCHEMAS=1 cargo test --release schema`; do not edit.\nA task file holds one `task` node; `rora check <file>` checks it. The built-in tasks are in `tasks/`.\n\n```text\n{}```\n",
            kind_text(&crate::task::spec::SPEC)
        ),
    ));
    files.push((
        "pipeline.md".to_string(),
        format!("# rora pipeline schema\n\nGENERATED from src/schema by `RORA_UPDATE_SCHEMAS=1 cargo test --release schema`; do not edit.\n\n```text\n{}```\n", all_text()),
    ));
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn schemas_dir_matches_the_registry() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let update = std::env::var_os("RORA_UPDATE_SCHEMAS").is_some_and(|v| v == "1");
        let mut stale = vec![];
        for (name, text) in generated_files() {
            let path = dir.join(&name);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(name);
            }
        }
        assert!(
            stale.is_empty(),
            "schemas/ is stale ({stale:?}); rerun with RORA_UPDATE_SCHEMAS=1"
        );
    }

    #[test]
    fn adapter_text_lists_rank_as_required_with_its_range() {
        let t = kind_text(crate::stages::spec(crate::schema::Kind::Adapter));
        assert!(
            t.contains("rank <integer in 1..=65536>  [required unless path or hub is given; optional with method series / parallel / prefix]"),
            "{t}"
        );
        assert!(t.contains("alpha-per-rank"));
    }
}
