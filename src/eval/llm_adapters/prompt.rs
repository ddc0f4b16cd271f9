//! The LLM-Adapters / DoRA evaluation prompt (commonsense_evaluate.py), byte for byte, and the
//! per-task instruction and answer labels (DESIGN.md, "LLM-Adapters prompts").
//!
//! Written here from DESIGN.md rather than shared with `train::data` so evaluation does not depend
//! on the data module; the eval prompt differs from the train prompt in whitespace (one space after
//! "request." instead of two, no indented blank line before "### Response:").

use crate::eval::task::{McItem, TaskKind};

const EVAL_PREFIX: &str = "Below is an instruction that describes a task. Write a response that appropriately \
completes the request. \n\n                ### Instruction:\n                ";
const EVAL_SUFFIX: &str = "\n\n                ### Response:\n                ";

/// The eval prompt around an instruction (the model continues after the final indentation).
pub fn eval_prompt(instruction: &str) -> String {
    format!("{EVAL_PREFIX}{instruction}{EVAL_SUFFIX}")
}

/// The answer word for choice `idx` (0-based): `true`/`false`, `solution1`, `answer2`, `ending3`, `option1`.
pub fn answer_label(kind: TaskKind, idx: usize) -> String {
    let n = idx + 1;
    match kind {
        TaskKind::Boolq => if idx == 0 { "true" } else { "false" }.to_string(),
        TaskKind::Piqa => format!("solution{n}"),
        TaskKind::Hellaswag => format!("ending{n}"),
        TaskKind::Winogrande => format!("option{n}"),
        TaskKind::Siqa | TaskKind::ArcE | TaskKind::ArcC | TaskKind::Obqa | TaskKind::Custom => {
            format!("answer{n}")
        }
    }
}

/// The task instruction for one item (choices numbered from 1).
pub fn instruction(kind: TaskKind, item: &McItem) -> String {
    let q = &item.question;
    let c = &item.choices;
    let numbered = |word: &str, sep: &str| {
        c.iter()
            .enumerate()
            .map(|(i, t)| format!("{word}{}: {t}", i + 1))
            .collect::<Vec<_>>()
            .join(sep)
    };
    let format_list = |word: &str| {
        (1..=c.len())
            .map(|i| format!("{word}{i}"))
            .collect::<Vec<_>>()
            .join("/")
    };
    match kind {
        TaskKind::Boolq => {
            format!(
                "Please answer the following question with true or false, question: {q}?\n\nAnswer format: true/false"
            )
        }
        TaskKind::Piqa => format!(
            "Please choose the correct solution to the question: {q}\n\n{}\n\nAnswer format: {}",
            numbered("Solution", "\n\n"),
            format_list("solution")
        ),
        TaskKind::Hellaswag => format!(
            "Please choose the correct ending to complete the given sentence: {q}\n\n{}\n\nAnswer format: {}",
            numbered("Ending", " "),
            format_list("ending")
        ),
        TaskKind::Winogrande => format!(
            "Please choose the correct answer to fill in the blank to complete the given sentence: {q}\n\n{} Answer format: {}",
            numbered("Option", " "),
            format_list("option")
        ),
        TaskKind::Siqa | TaskKind::ArcE | TaskKind::ArcC | TaskKind::Obqa | TaskKind::Custom => {
            format!(
                "Please choose the correct answer to the question: {q}\n\n{}\n\nAnswer format: {}",
                numbered("Answer", " "),
                format_list("answer")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(q: &str, choices: &[&str]) -> McItem {
        McItem {
            id: serde_json::json!(0),
            question: q.into(),
            choices: choices.iter().map(|s| s.to_string()).collect(),
            label: 0,
        }
    }

    /// Expected strings written from DESIGN.md's Python literals (the `{...}` filled by hand).
    #[test]
    fn eval_prompt_bytes() {
        let p = eval_prompt("INSTR");
        assert_eq!(
            p,
            "Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n                ### Instruction:\n                INSTR\n\n                ### Response:\n                "
        );
    }

    #[test]
    fn instructions_per_task() {
        let cases: [(TaskKind, McItem, &str); 6] = [
            (
                TaskKind::Boolq,
                item("is house tax and property tax are same", &["true", "false"]),
                "Please answer the following question with true or false, question: is house tax and property tax are same?\n\nAnswer format: true/false",
            ),
            (
                TaskKind::Piqa,
                item("dresser", &["a b", "c"]),
                "Please choose the correct solution to the question: dresser\n\nSolution1: a b\n\nSolution2: c\n\nAnswer format: solution1/solution2",
            ),
            (
                TaskKind::Siqa,
                item("Q?", &["x", "y", "z"]),
                "Please choose the correct answer to the question: Q?\n\nAnswer1: x Answer2: y Answer3: z\n\nAnswer format: answer1/answer2/answer3",
            ),
            (
                TaskKind::Hellaswag,
                item("Roof: he", &["a.", "b.", "c.", "d."]),
                "Please choose the correct ending to complete the given sentence: Roof: he\n\nEnding1: a. Ending2: b. Ending3: c. Ending4: d.\n\nAnswer format: ending1/ending2/ending3/ending4",
            ),
            (
                TaskKind::Winogrande,
                item("Sarah beat Maria so _ won.", &["Sarah", "Maria"]),
                "Please choose the correct answer to fill in the blank to complete the given sentence: Sarah beat Maria so _ won.\n\nOption1: Sarah Option2: Maria Answer format: option1/option2",
            ),
            (
                TaskKind::ArcC,
                item("Which?", &["p", "q", "r", "s", "t"]),
                "Please choose the correct answer to the question: Which?\n\nAnswer1: p Answer2: q Answer3: r Answer4: s Answer5: t\n\nAnswer format: answer1/answer2/answer3/answer4/answer5",
            ),
        ];
        for (kind, it, want) in cases {
            assert_eq!(instruction(kind, &it), want, "{kind:?}");
        }
    }

    #[test]
    fn labels() {
        assert_eq!(answer_label(TaskKind::Boolq, 0), "true");
        assert_eq!(answer_label(TaskKind::Boolq, 1), "false");
        assert_eq!(answer_label(TaskKind::Piqa, 1), "solution2");
        assert_eq!(answer_label(TaskKind::Obqa, 3), "answer4");
        assert_eq!(answer_label(TaskKind::Hellaswag, 0), "ending1");
        assert_eq!(answer_label(TaskKind::Winogrande, 1), "option2");
    }
}
