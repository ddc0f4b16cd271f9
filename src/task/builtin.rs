//! The built-in tasks: the files in `tasks/` (one per commonsense task, and `mc` for any other
//! multiple-choice rows), embedded in the binary and parsed once. Their rows live in the eval
//! stage's `dir` (`<name>.<split>.jsonl[.gz]`).

use std::path::Path;
use std::sync::OnceLock;

use super::def::{Compiled, TaskDef};
use super::names::Task as Builtin;

/// (name, file text) of every built-in task file.
pub const FILES: [(&str, &str); 9] = [
    ("boolq", include_str!("../../tasks/boolq.kdl")),
    ("piqa", include_str!("../../tasks/piqa.kdl")),
    ("siqa", include_str!("../../tasks/siqa.kdl")),
    ("hellaswag", include_str!("../../tasks/hellaswag.kdl")),
    ("winogrande", include_str!("../../tasks/winogrande.kdl")),
    ("arc-e", include_str!("../../tasks/arc-e.kdl")),
    ("arc-c", include_str!("../../tasks/arc-c.kdl")),
    ("obqa", include_str!("../../tasks/obqa.kdl")),
    ("mc", include_str!("../../tasks/mc.kdl")),
];

fn index(task: Builtin) -> usize {
    match task {
        Builtin::Boolq => 0,
        Builtin::Piqa => 1,
        Builtin::Siqa => 2,
        Builtin::Hellaswag => 3,
        Builtin::Winogrande => 4,
        Builtin::ArcE => 5,
        Builtin::ArcC => 6,
        Builtin::Obqa => 7,
        Builtin::Mc => 8,
    }
}

fn parse(name: &str, text: &str) -> Compiled {
    let path = Path::new("tasks").join(format!("{name}.kdl"));
    let checked = crate::check::task::check_task_bytes(&path, text.as_bytes(), false);
    // invariant: the built-in files are checked by a test (`builtin_files_check_clean`).
    let def = checked
        .def
        .unwrap_or_else(|| panic!("built-in task file {name}: {:?}", checked.diagnostics));
    def.compile()
        .unwrap_or_else(|e| panic!("built-in task file {name}: {e}"))
}

/// The compiled definition of a built-in task.
pub fn compiled(task: Builtin) -> &'static Compiled {
    static ALL: OnceLock<Vec<Compiled>> = OnceLock::new();
    &ALL.get_or_init(|| FILES.iter().map(|(n, t)| parse(n, t)).collect())[index(task)]
}

/// The definition of a built-in task.
pub fn def(task: Builtin) -> &'static TaskDef {
    &compiled(task).def
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_files_check_clean() {
        for (name, text) in FILES {
            let path = Path::new("tasks").join(format!("{name}.kdl"));
            let c = crate::check::task::check_task_bytes(&path, text.as_bytes(), false);
            assert!(!c.has_errors(), "{name}: {:?}", c.diagnostics);
            let def = c.def.unwrap();
            assert_eq!(def.name, name);
            def.compile().unwrap();
        }
        for t in Builtin::COMMONSENSE.into_iter().chain([Builtin::Mc]) {
            assert_eq!(def(t).name, t.name());
        }
    }
}
