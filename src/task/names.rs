//! The built-in task names: the commonsense tasks of the LLM-Adapters / DoRA recipe (and `mc`,
//! any other multiple-choice rows), their aliases, and how a task is told from a file name
//! (`boolq.train.jsonl.gz` -> boolq). Their definitions are the files in `tasks/`
//! ([`super::builtin`]).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A multiple-choice task. `Mc` is any other multiple-choice file: it gets the ARC-style prompt
/// (`Answer1: ... Answer format: answer1/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    Boolq,
    Piqa,
    Siqa,
    Hellaswag,
    Winogrande,
    ArcE,
    ArcC,
    Obqa,
    Mc,
}

impl Task {
    /// The eight benchmark tasks, in the order LLM-Adapters reports them.
    pub const COMMONSENSE: [Task; 8] = [
        Task::Boolq,
        Task::Piqa,
        Task::Siqa,
        Task::Hellaswag,
        Task::Winogrande,
        Task::ArcE,
        Task::ArcC,
        Task::Obqa,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Task::Boolq => "boolq",
            Task::Piqa => "piqa",
            Task::Siqa => "siqa",
            Task::Hellaswag => "hellaswag",
            Task::Winogrande => "winogrande",
            Task::ArcE => "arc-e",
            Task::ArcC => "arc-c",
            Task::Obqa => "obqa",
            Task::Mc => "mc",
        }
    }

    /// Parse a task name; accepts the usual aliases (`arc_easy`, `ARC-Challenge`, `openbookqa`,
    /// `social_i_qa`, ...), case-insensitively.
    pub fn parse(name: &str) -> Option<Task> {
        let n = name.to_ascii_lowercase().replace('_', "-");
        Some(match n.as_str() {
            "boolq" => Task::Boolq,
            "piqa" => Task::Piqa,
            "siqa" | "social-i-qa" | "social-iqa" | "socialiqa" => Task::Siqa,
            "hellaswag" => Task::Hellaswag,
            "winogrande" => Task::Winogrande,
            "arc-e" | "arc-easy" | "arceasy" => Task::ArcE,
            "arc-c" | "arc-challenge" | "arcchallenge" => Task::ArcC,
            "obqa" | "openbookqa" => Task::Obqa,
            "mc" => Task::Mc,
            _ => return None,
        })
    }

    /// The task named by a file's name: the part before the first `.`.
    pub fn from_file_name(path: &Path) -> Option<Task> {
        let name = path.file_name()?.to_str()?;
        Task::parse(name.split('.').next()?)
    }

    /// Comma-separated list of accepted names, for error messages.
    pub fn known_names() -> String {
        let mut v: Vec<&str> = Task::COMMONSENSE.iter().map(|t| t.name()).collect();
        v.push(Task::Mc.name());
        v.join(", ")
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_from_file_name_and_aliases() {
        assert_eq!(
            Task::from_file_name(Path::new("x/boolq.train.jsonl.gz")),
            Some(Task::Boolq)
        );
        assert_eq!(
            Task::from_file_name(Path::new("arc-e.eval.jsonl")),
            Some(Task::ArcE)
        );
        assert_eq!(
            Task::from_file_name(Path::new("ARC-Challenge.json")),
            Some(Task::ArcC)
        );
        assert_eq!(
            Task::from_file_name(Path::new("openbookqa.parquet")),
            Some(Task::Obqa)
        );
        assert_eq!(
            Task::from_file_name(Path::new("social_i_qa.jsonl")),
            Some(Task::Siqa)
        );
        assert_eq!(Task::from_file_name(Path::new("cs170k.json")), None);
        for t in Task::COMMONSENSE {
            assert_eq!(Task::parse(t.name()), Some(t));
        }
    }
}
