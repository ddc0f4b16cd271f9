//! lm-evaluation-harness (v0.4) zero-shot prompts for the log-likelihood protocol: for each choice,
//! a context and a continuation (the choice after the target delimiter " ").
//!
//! | task | context | continuation |
//! |---|---|---|
//! | boolq | `Question: {question}?\nAnswer:` | ` yes` / ` no` |
//! | piqa | `Question: {goal}\nAnswer:` | ` {solution}` |
//! | siqa | `Q: {context} {question}\nA:` | ` {answer}` |
//! | hellaswag | `preprocess({activity}: {ctx})` | ` preprocess({ending})` |
//! | winogrande | sentence up to `_`, with the option | ` {rest of the sentence, stripped}` |
//! | arc-e, arc-c | `Question: {question}\nAnswer:` | ` {choice}` |
//! | obqa | `{question_stem}` (lm-eval's openbookqa.yaml has no "Question:" prefix) | ` {choice}` |
//! | custom | `Question: {question}\nAnswer:` | ` {choice}` |
//!
//! The table is what the built-in task files in `tasks/` say; the tests below pin their bytes.
//!
//! Adaptations to the shipped data (ASSETS.md): BoolQ has no passage, so lm-eval's
//! `{passage}\nQuestion: ...` loses its first line; choice 0 ("true") is " yes". SIQA's `question`
//! already joins context and question with a space. HellaSwag's `question` is
//! `{activity}: {ctx_a} {ctx_b}` without lm-eval's capitalisation of `ctx_b` (not recoverable);
//! lm-eval's `preprocess` is applied. `norm_chars` is the character count of the choice string
//! lm-eval divides by for acc_norm (the choice without the delimiter; Python `len`, code points).
//! For winogrande the continuation is shared, so acc_norm equals acc (lm-eval reports acc only).

use crate::eval::task::{McItem, TaskKind};
pub use crate::task::ChoiceRequest;
/// lm-eval's hellaswag `preprocess` (the `lm_eval_preprocess` template filter).
pub use crate::task::template::lm_eval_preprocess as hellaswag_preprocess;

/// The requests for one item of a built-in task, one per choice, in choice order: the task
/// file's `context`, `delimiter` and `continuation` (`tasks/<task>.kdl`).
pub fn requests(kind: TaskKind, item: &McItem) -> Result<Vec<ChoiceRequest>, String> {
    crate::task::builtin::compiled(kind).requests(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(q: &str, choices: &[&str]) -> McItem {
        let choices: Vec<String> = choices.iter().map(|s| s.to_string()).collect();
        McItem::new(serde_json::json!(1), q, &choices, 0)
    }

    #[test]
    fn prompts_follow_lm_eval() {
        let r = requests(TaskKind::Boolq, &item("is it", &["true", "false"])).unwrap();
        assert_eq!(
            r[0],
            ChoiceRequest {
                context: "Question: is it?\nAnswer:".into(),
                continuation: " yes".into(),
                norm_chars: 3
            }
        );
        assert_eq!(r[1].continuation, " no");
        let r = requests(TaskKind::Piqa, &item("goal", &["s1", "sol 2"])).unwrap();
        assert_eq!(
            (
                r[1].context.as_str(),
                r[1].continuation.as_str(),
                r[1].norm_chars
            ),
            ("Question: goal\nAnswer:", " sol 2", 5)
        );
        let r = requests(TaskKind::Siqa, &item("Ctx. Why?", &["a", "b", "c"])).unwrap();
        assert_eq!(r[2].context, "Q: Ctx. Why?\nA:");
        let r = requests(
            TaskKind::Obqa,
            &item("Fog is near:", &["a marsh", "b", "c", "d"]),
        )
        .unwrap();
        assert_eq!(
            (r[0].context.as_str(), r[0].continuation.as_str()),
            ("Fog is near:", " a marsh")
        );
        let r = requests(
            TaskKind::Winogrande,
            &item("Sarah beat Maria so _ won the prize.", &["Sarah", "Maria"]),
        )
        .unwrap();
        assert_eq!(r[0].context, "Sarah beat Maria so Sarah");
        assert_eq!(r[1].context, "Sarah beat Maria so Maria");
        assert_eq!(r[1].continuation, " won the prize.");
        assert_eq!(r[1].norm_chars, "won the prize.".len());
    }

    #[test]
    fn hellaswag_preprocess_matches_python() {
        // Expected values by hand from lm-eval's utils.preprocess.
        assert_eq!(
            hellaswag_preprocess(" Home: [header] How to x [title] Do it.  Now "),
            "Home: How to x. Do it. Now"
        );
        assert_eq!(hellaswag_preprocess("a [step] b [x"), "a b [x");
        let r = requests(
            TaskKind::Hellaswag,
            &item("Roof: he", &["is [title] up.", "b", "c", "d"]),
        )
        .unwrap();
        assert_eq!(r[0].continuation, " is. up.");
        assert_eq!(r[0].norm_chars, 7);
    }
}
