//! Answer extraction as in LLM-Adapters' commonsense_evaluate.py `extract_answer`: the first match
//! of the task's label alternation in the stripped response, case-sensitive, no word boundaries.
//! No match means the answer is wrong and counted as unparseable.
//!
//! Label sets (LLM-Adapters): boolq `true|false`, piqa `solution1|solution2`, siqa/arc/obqa
//! `answer1|..|answer5` (always five, so "answer5" on a 4-choice item parses and is wrong),
//! hellaswag `ending1..4`, winogrande `option1|option2`. Custom tasks: `answer1..answerN` for N choices.

use regex::Regex;

use crate::eval::task::TaskKind;

/// The response part of a generation: LLM-Adapters decodes prompt + output and keeps
/// `split("### Response:")[1].strip()`; on the generated text alone that is the text before any
/// further "### Response:" marker, stripped.
pub fn response_text(generated: &str) -> &str {
    generated
        .split("### Response:")
        .next()
        .unwrap_or_default()
        .trim()
}

/// The label alternation for a task.
pub fn label_pattern(kind: TaskKind, n_choices: usize) -> String {
    let words: Vec<String> = match kind {
        TaskKind::Boolq => vec!["true".into(), "false".into()],
        TaskKind::Piqa => numbered("solution", 2),
        TaskKind::Siqa | TaskKind::ArcE | TaskKind::ArcC | TaskKind::Obqa => numbered("answer", 5),
        TaskKind::Hellaswag => numbered("ending", 4),
        TaskKind::Winogrande => numbered("option", 2),
        TaskKind::Mc => {
            let mut w = numbered("answer", n_choices);
            // Longest first, so "answer12" is not read as "answer1".
            w.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
            w
        }
    };
    words.join("|")
}

fn numbered(word: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{word}{i}")).collect()
}

/// A compiled extractor for one task (and, for custom tasks, one number of choices).
#[derive(Debug, Clone)]
pub struct Extractor {
    re: Regex,
}

impl Extractor {
    pub fn new(kind: TaskKind, n_choices: usize) -> Extractor {
        let pattern = label_pattern(kind, n_choices);
        // invariant: the pattern is an alternation of literal ASCII words.
        let re = Regex::new(&pattern).expect("label alternation is a valid regex");
        Extractor { re }
    }

    /// The first label word in the response, if any.
    pub fn extract(&self, response: &str) -> Option<String> {
        self.re
            .find(response.trim())
            .map(|m| m.as_str().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixtures: (task, choices, model output, expected extraction), following the Python
    /// `re.findall(pattern, sentence.strip())[0]` semantics by hand.
    #[test]
    fn extraction_fixtures() {
        let cases: &[(TaskKind, usize, &str, Option<&str>)] = &[
            (
                TaskKind::Boolq,
                2,
                "the correct answer is true",
                Some("true"),
            ),
            (TaskKind::Boolq, 2, "false, not true", Some("false")),
            (TaskKind::Boolq, 2, "The correct answer is True", None),
            (TaskKind::Boolq, 2, "untrue", Some("true")),
            (
                TaskKind::Piqa,
                2,
                "the correct answer is solution2",
                Some("solution2"),
            ),
            (
                TaskKind::Piqa,
                2,
                "solution3 or solution1",
                Some("solution1"),
            ),
            (TaskKind::Piqa, 2, "Solution1", None),
            (
                TaskKind::Siqa,
                3,
                "the correct answer is answer3",
                Some("answer3"),
            ),
            (TaskKind::ArcE, 4, "answer5", Some("answer5")),
            (TaskKind::Obqa, 4, "answer 2", None),
            (
                TaskKind::Hellaswag,
                4,
                "the correct answer is ending4 ending1",
                Some("ending4"),
            ),
            (TaskKind::Hellaswag, 4, "ending5", None),
            (
                TaskKind::Winogrande,
                2,
                "the correct answer is option2",
                Some("option2"),
            ),
            (TaskKind::Winogrande, 2, "", None),
            (TaskKind::Mc, 12, "answer12", Some("answer12")),
            (TaskKind::Mc, 3, "answer4 then answer2", Some("answer2")),
        ];
        for &(kind, n, text, want) in cases {
            let got = Extractor::new(kind, n).extract(text);
            assert_eq!(got.as_deref(), want, "{kind:?} {text:?}");
        }
    }

    #[test]
    fn response_is_cut_at_a_repeated_marker() {
        assert_eq!(
            response_text("  the correct answer is true\n### Response: false"),
            "the correct answer is true"
        );
        assert_eq!(response_text("\n answer1 \n"), "answer1");
    }
}
