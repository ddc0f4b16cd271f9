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
//! Adaptations to the shipped data (ASSETS.md): BoolQ has no passage, so lm-eval's
//! `{passage}\nQuestion: ...` loses its first line; choice 0 ("true") is " yes". SIQA's `question`
//! already joins context and question with a space. HellaSwag's `question` is
//! `{activity}: {ctx_a} {ctx_b}` without lm-eval's capitalisation of `ctx_b` (not recoverable);
//! lm-eval's `preprocess` is applied. `norm_chars` is the character count of the choice string
//! lm-eval divides by for acc_norm (the choice without the delimiter; Python `len`, code points).
//! For winogrande the continuation is shared, so acc_norm equals acc (lm-eval reports acc only).

use crate::eval::task::{McItem, TaskKind};

/// One continuation to score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceRequest {
    pub context: String,
    pub continuation: String,
    /// Characters acc_norm divides by.
    pub norm_chars: usize,
}

fn simple(context: String, choices: impl IntoIterator<Item = String>) -> Vec<ChoiceRequest> {
    choices
        .into_iter()
        .map(|c| ChoiceRequest {
            context: context.clone(),
            norm_chars: c.chars().count(),
            continuation: format!(" {c}"),
        })
        .collect()
}

/// lm-eval's hellaswag `preprocess`: strip, " [title]" -> ". ", drop `[...]`, collapse double spaces once.
pub fn hellaswag_preprocess(text: &str) -> String {
    let t = text.trim().replace(" [title]", ". ");
    let mut out = String::with_capacity(t.len());
    let mut rest = t.as_str();
    // Python re.sub("\\[.*?\\]", "", text): remove each shortest bracketed span.
    while let Some(open) = rest.find('[') {
        match rest[open + 1..].find(']') {
            Some(close) => {
                out.push_str(&rest[..open]);
                rest = &rest[open + 1 + close + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out.replace("  ", " ")
}

/// The requests for one item, one per choice, in choice order.
pub fn requests(kind: TaskKind, item: &McItem) -> Result<Vec<ChoiceRequest>, String> {
    let q = &item.question;
    let choices = item.choices.iter().cloned();
    Ok(match kind {
        TaskKind::Boolq => simple(
            format!("Question: {q}?\nAnswer:"),
            ["yes".to_string(), "no".to_string()],
        ),
        TaskKind::Piqa | TaskKind::ArcE | TaskKind::ArcC | TaskKind::Mc => {
            simple(format!("Question: {q}\nAnswer:"), choices)
        }
        TaskKind::Siqa => simple(format!("Q: {q}\nA:"), choices),
        TaskKind::Obqa => simple(q.clone(), choices),
        TaskKind::Hellaswag => simple(
            hellaswag_preprocess(q),
            item.choices.iter().map(|c| hellaswag_preprocess(c)),
        ),
        TaskKind::Winogrande => {
            let blank = q
                .find('_')
                .ok_or_else(|| "winogrande sentence has no `_` blank".to_string())?;
            let target = q[blank + 1..].trim();
            let continuation = format!(" {target}");
            item.choices
                .iter()
                .map(|opt| ChoiceRequest {
                    context: format!("{}{opt}", &q[..blank]),
                    continuation: continuation.clone(),
                    norm_chars: target.chars().count(),
                })
                .collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(q: &str, choices: &[&str]) -> McItem {
        McItem {
            id: serde_json::json!(1),
            question: q.into(),
            choices: choices.iter().map(|s| s.to_string()).collect(),
            label: 0,
        }
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
