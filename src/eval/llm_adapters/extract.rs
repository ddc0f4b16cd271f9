//! Answer extraction as in LLM-Adapters' commonsense_evaluate.py `extract_answer`: the first match
//! of the task's label alternation in the stripped response, case-sensitive, no word boundaries.
//! No match means the answer is wrong and counted as unparseable.
//!
//! Label sets (LLM-Adapters): boolq `true|false`, piqa `solution1|solution2`, siqa/arc/obqa
//! `answer1|..|answer5` (always five, so "answer5" on a 4-choice item parses and is wrong),
//! hellaswag `ending1..4`, winogrande `option1|option2`. Custom tasks: `answer1..answerN` for N choices.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::task::TaskKind;

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
            let task = crate::task::builtin::compiled(kind);
            let answers = crate::train::data::task::label_set(kind, n);
            let got = task.extract(text, &answers);
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
