//! The commonsense tasks of the LLM-Adapters / DoRA recipe as training sees them: their names
//! (`crate::task::names`) and answer labels (the built-in task files' `answer` templates).

pub use crate::task::names::Task;

/// The answer label of choice `idx` (0-based) as LLM-Adapters writes it: `true`/`false` for
/// BoolQ, else `solution{idx+1}`, `answer{idx+1}`, `ending{idx+1}`, `option{idx+1}`. The words
/// come from the built-in task file's `answer` template (`tasks/<task>.kdl`). `None` for BoolQ
/// indices past 1.
pub fn answer_label(task: Task, idx: usize) -> Option<String> {
    let item = crate::task::McItem::new(
        serde_json::Value::Null,
        "",
        &vec![String::new(); idx + 1],
        0,
    );
    crate::task::builtin::compiled(task).answer(&item, idx).ok()
}

/// The range of choice counts the task's rows may have (its task file's `min-choices` and
/// `max-choices`).
pub fn choice_counts(task: Task) -> std::ops::RangeInclusive<usize> {
    let d = crate::task::builtin::def(task);
    d.min_choices..=d.max_choices
}

/// All answer labels of a row with `n_choices` choices (BoolQ: always `true`, `false`).
pub fn label_set(task: Task, n_choices: usize) -> Vec<String> {
    let n = if task == Task::Boolq { 2 } else { n_choices };
    (0..n).filter_map(|i| answer_label(task, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_llm_adapters() {
        assert_eq!(label_set(Task::Boolq, 2), ["true", "false"]);
        assert_eq!(label_set(Task::Piqa, 2), ["solution1", "solution2"]);
        assert_eq!(label_set(Task::Siqa, 3), ["answer1", "answer2", "answer3"]);
        assert_eq!(
            label_set(Task::Hellaswag, 4),
            ["ending1", "ending2", "ending3", "ending4"]
        );
        assert_eq!(label_set(Task::Winogrande, 2), ["option1", "option2"]);
        assert_eq!(answer_label(Task::ArcC, 4).as_deref(), Some("answer5"));
        assert_eq!(answer_label(Task::Boolq, 2), None);
    }
}
