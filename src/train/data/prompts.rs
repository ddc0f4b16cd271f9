//! The LLM-Adapters / DoRA commonsense prompts, byte for byte, as pure functions.
//!
//! Sources: `generate_prompt` in NVlabs/DoRA `commonsense_reasoning/finetune.py` (train prompt,
//! with and without input) and `commonsense_evaluate.py` (eval prompt); the per-task instructions
//! as they appear in LLM-Adapters' `commonsense_170k.json` (quoted in DESIGN.md). The train and
//! eval prompts differ in whitespace on purpose (two spaces vs one after "request.", an indented
//! blank line vs an empty one): reproduce, do not tidy.

use super::schema::McRow;
use super::task::{Task, answer_label, label_set};

const INDENT: &str = "                "; // 16 spaces, the source's indentation inside the f-string

/// The instruction LLM-Adapters writes for a multiple-choice row; choices are numbered from 1.
/// `row.question` already holds SIQA's context + question and HellaSwag's `activity: context`.
pub fn llm_adapters_instruction(task: Task, row: &McRow) -> String {
    instruction_text(task, &row.question, &row.choices)
}

/// [`llm_adapters_instruction`] from a question and its choices (evaluation items are not
/// `McRow`s; both sides use this one function). The text is the built-in task file's
/// `instruction` template (`tasks/<task>.kdl`), with the row's answer words.
pub fn instruction_text(task: Task, question: &str, choices: &[String]) -> String {
    let item = crate::task::McItem::new(serde_json::Value::Null, question, choices, 0);
    let answers = label_set(task, choices.len());
    // invariant: the built-in instruction templates use only `question`, `choices` and
    // `answers`, which are always defined, and no filter that can fail.
    crate::task::builtin::compiled(task)
        .instruction(&item, &answers)
        .unwrap_or_else(|e| panic!("built-in instruction of {task}: {e}"))
}

/// The training target: `the correct answer is {label}`.
pub fn llm_adapters_output(label: &str) -> String {
    format!("the correct answer is {label}")
}

/// The target of a multiple-choice row (`None` when its label has no answer label, e.g. BoolQ
/// label 2; rows are validated before this is called).
pub fn llm_adapters_row_output(task: Task, row: &McRow) -> Option<String> {
    answer_label(task, row.label).map(|l| llm_adapters_output(&l))
}

/// The training prompt (finetune.py `generate_prompt`) with `output` appended; pass `output = ""`
/// for the user prompt whose tokens are masked when `train_on_inputs` is off.
pub fn llm_adapters_train_prompt(instruction: &str, input: &str, output: &str) -> String {
    if input.is_empty() {
        format!(
            "Below is an instruction that describes a task. Write a response that appropriately completes the request.  \n\n{INDENT}### Instruction:\n{INDENT}{instruction}\n{INDENT}\n{INDENT}### Response:\n{INDENT}{output}"
        )
    } else {
        format!(
            "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request. \n\n{INDENT}### Instruction:\n{INDENT}{instruction}\n{INDENT}\n{INDENT}### Input:\n{INDENT}{input}\n{INDENT}\n{INDENT}### Response:\n{INDENT}{output}"
        )
    }
}

/// The evaluation prompt (commonsense_evaluate.py `generate_prompt`); generation continues it.
pub fn llm_adapters_eval_prompt(instruction: &str) -> String {
    format!(
        "Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n{INDENT}### Instruction:\n{INDENT}{instruction}\n\n{INDENT}### Response:\n{INDENT}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(q: &str, choices: &[&str], label: usize) -> McRow {
        McRow {
            id: "0".into(),
            question: q.into(),
            choices: choices.iter().map(|c| c.to_string()).collect(),
            label,
        }
    }

    // Reference strings written from the Python literals in DESIGN.md (whitespace exact).
    #[test]
    fn train_and_eval_prompts_differ_in_whitespace_as_the_source() {
        let p = llm_adapters_train_prompt("INSTR", "", "OUT");
        let expected = "Below is an instruction that describes a task. Write a response that appropriately completes the request.  \n\n                ### Instruction:\n                INSTR\n                \n                ### Response:\n                OUT";
        assert_eq!(p, expected);
        let e = llm_adapters_eval_prompt("INSTR");
        let expected = "Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n                ### Instruction:\n                INSTR\n\n                ### Response:\n                ";
        assert_eq!(e, expected);
        assert!(
            llm_adapters_train_prompt("I", "", "").ends_with("### Response:\n                ")
        );
        let with_input = llm_adapters_train_prompt("I", "X", "O");
        assert!(with_input.contains("completes the request. \n\n                ### Instruction:\n                I\n                \n                ### Input:\n                X\n                \n                ### Response:\n                O"));
    }

    #[test]
    fn instruction_numbering_and_answer_format() {
        let r = row("Q", &["a", "b", "c", "d", "e"], 4);
        assert_eq!(
            llm_adapters_instruction(Task::ArcC, &r),
            "Please choose the correct answer to the question: Q\n\nAnswer1: a Answer2: b Answer3: c Answer4: d Answer5: e\n\nAnswer format: answer1/answer2/answer3/answer4/answer5"
        );
        assert_eq!(
            llm_adapters_row_output(Task::ArcC, &r).as_deref(),
            Some("the correct answer is answer5")
        );
    }
}
