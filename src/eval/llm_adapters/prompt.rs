//! The LLM-Adapters / DoRA evaluation prompt (commonsense_evaluate.py), byte for byte, and the
//! per-task instruction and answer labels (DESIGN.md, "LLM-Adapters prompts").
//!
//! One source of truth: the strings are built by `train::data::prompts` (the same functions the
//! data stage uses for training prompts); this module adapts them to eval's [`McItem`]. The eval
//! prompt differs from the train prompt in whitespace (one space after "request." instead of two,
//! no indented blank line before "### Response:"); the tests below pin the bytes.

use crate::eval::task::{McItem, TaskKind};
use crate::train::data::prompts::{instruction_text, llm_adapters_eval_prompt};
use crate::train::data::task;

/// The eval prompt around an instruction (the model continues after the final indentation).
pub fn eval_prompt(instruction: &str) -> String {
    llm_adapters_eval_prompt(instruction)
}

/// The answer word for choice `idx` (0-based): `true`/`false`, `solution1`, `answer2`, `ending3`,
/// `option1`; `None` for a BoolQ index past 1 (loading rejects such items).
pub fn answer_label(kind: TaskKind, idx: usize) -> Option<String> {
    task::answer_label(kind, idx)
}

/// The task instruction for one item (choices numbered from 1).
pub fn instruction(kind: TaskKind, item: &McItem) -> String {
    instruction_text(kind, &item.question, &item.choices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(q: &str, choices: &[&str]) -> McItem {
        let choices: Vec<String> = choices.iter().map(|s| s.to_string()).collect();
        McItem::new(serde_json::json!(0), q, &choices, 0)
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
        let l = |k, i| answer_label(k, i).unwrap_or_default();
        assert_eq!(l(TaskKind::Boolq, 0), "true");
        assert_eq!(l(TaskKind::Boolq, 1), "false");
        assert_eq!(answer_label(TaskKind::Boolq, 2), None);
        assert_eq!(l(TaskKind::Piqa, 1), "solution2");
        assert_eq!(l(TaskKind::Obqa, 3), "answer4");
        assert_eq!(l(TaskKind::Hellaswag, 0), "ending1");
        assert_eq!(l(TaskKind::Winogrande, 1), "option2");
        assert_eq!(l(TaskKind::Mc, 11), "answer12");
    }
}
