//! The schema of a task file (`rora schema task`, `schemas/task.json`): one `task "<name>" { .. }`
//! node whose options say where the rows are, which columns they use, and how each protocol turns
//! a row into prompts. Defaults live here and only here; the eight built-in tasks in `tasks/` are
//! files of this same kind.

use crate::schema::registry::{child, def, def_prop, one, prop, props};
use crate::schema::{Args, Default, Kind, KindSpec, Ty};

/// The kind name a task file's node carries (`task "csqa" { .. }`); not a stage kind.
pub const TASK_KIND: Kind = Kind("task");

crate::choice_enum! {
    /// How the llm-adapters protocol wraps a task's `instruction`.
    pub enum PromptStyle {
        /// LLM-Adapters' eval prompt ("Below is an instruction ... ### Response:").
        LlmAdapters = "llm-adapters",
        /// The instruction as it is.
        Plain = "plain",
    }
}

crate::choice_enum! {
    /// How an extracted answer is compared with the gold answer.
    pub enum Metric {
        /// Equal strings.
        ExactMatch = "exact-match",
        /// Equal after lower-casing both.
        ExactMatchIgnoreCase = "exact-match-ignore-case",
    }
}

/// The default instruction (LLM-Adapters' ARC / SIQA / OBQA wording): the question, the choices
/// numbered from 1 and the answer format.
pub const DEFAULT_INSTRUCTION: &str = "Please choose the correct answer to the question: {{ question }}\n\n{% for c in choices %}Answer{{ loop.index }}: {{ c }}{% if not loop.last %} {% endif %}{% endfor %}\n\nAnswer format: {{ answers | join(\"/\") }}";

pub static SPEC: KindSpec = KindSpec {
    kind: TASK_KIND,
    doc: "A multiple-choice evaluation task: where its rows are, which columns they use, and how \
          each protocol (loglik, llm-adapters generation) turns a row into prompts. Templates are \
          minijinja; they see `question`, `choices`, `label` (0-based gold index), `row` (the \
          whole JSON row) and, per choice, `choice`, `index` (0-based) and `number` (1-based); \
          `instruction` also sees `answers` (every choice's answer word).",
    version: 1,
    props: &[],
    children: &[
        one(
            "doc",
            "What the task is, for people reading the file.",
            Ty::Str,
        ),
        one(
            "lm-eval-name",
            "The task's name in lm-evaluation-harness results (default: its own name).",
            Ty::Str,
        ),
        props(
            child(
                "data",
                "Row files per split, relative to the task file. A split not named here is \
                 `<name>.<split>.jsonl[.gz]` next to the task file (built-in tasks: in the eval \
                 stage's `dir`).",
                Args::None,
            ),
            &[
                prop("eval", Ty::Str, "The evaluation rows."),
                prop("train", Ty::Str, "Training rows (few-shot examples)."),
            ],
        ),
        def(
            one(
                "id-column",
                "The field holding a row's id (rows without it get their line number).",
                Ty::Str,
            ),
            Default::Str("id"),
        ),
        def(
            one(
                "question-column",
                "The field holding the question or context.",
                Ty::Str,
            ),
            Default::Str("question"),
        ),
        def(
            one(
                "choices-column",
                "The field holding the list of choices.",
                Ty::Str,
            ),
            Default::Str("choices"),
        ),
        def(
            one(
                "label-column",
                "The field holding the gold answer: an index, a letter A-Z, or the text of a choice.",
                Ty::Str,
            ),
            Default::Str("label"),
        ),
        child(
            "choice-columns",
            "Take the choices from these fields, in order, instead of `choices-column` \
             (`choice-columns \"sol1\" \"sol2\"`).",
            Args::Many {
                ty: Ty::Str,
                min: 2,
            },
        ),
        def(
            one(
                "label-base",
                "What an integer label counts from (0: `0` is the first choice; 1: `1` is).",
                Ty::int(0, 1),
            ),
            Default::Int(0),
        ),
        def(
            one(
                "min-choices",
                "Fewest choices a row may have.",
                Ty::int(2, 26),
            ),
            Default::Int(2),
        ),
        def(
            one(
                "max-choices",
                "Most choices a row may have.",
                Ty::int(2, 26),
            ),
            Default::Int(26),
        ),
        child(
            "choice-set",
            "Every row's choices must be exactly these (compared trimmed, case-insensitively).",
            Args::Many {
                ty: Ty::Str,
                min: 2,
            },
        ),
        def(
            one(
                "context",
                "loglik: the context scored before each choice.",
                Ty::Str,
            ),
            Default::Str("Question: {{ question }}\nAnswer:"),
        ),
        def(
            one(
                "continuation",
                "loglik: the continuation whose log-likelihood is scored, per choice (without \
                 the delimiter; acc_norm divides by its length in characters).",
                Ty::Str,
            ),
            Default::Str("{{ choice }}"),
        ),
        def(
            one(
                "delimiter",
                "Put between context and continuation (loglik), and between a plain prompt and the \
                 answer of a few-shot example (lm-eval's target_delimiter).",
                Ty::Str,
            ),
            Default::Str(" "),
        ),
        def(
            one(
                "instruction",
                "llm-adapters: the instruction for a row.",
                Ty::Str,
            ),
            Default::Str(DEFAULT_INSTRUCTION),
        ),
        def(
            one(
                "prompt",
                "llm-adapters: how the instruction is wrapped into the prompt.",
                Ty::Choice(PromptStyle::NAMES),
            ),
            Default::Str("llm-adapters"),
        ),
        def(
            one(
                "answer",
                "llm-adapters: the answer word of a choice (what the model should write).",
                Ty::Str,
            ),
            Default::Str("answer{{ number }}"),
        ),
        one(
            "extract",
            "llm-adapters: a regex; its first match in the response (group 1 if it has \
             groups) is the model's answer. Default: any of the row's answer words, longest first.",
            Ty::Str,
        ),
        def(
            one(
                "metric",
                "llm-adapters: how the extracted answer is compared with the gold answer word.",
                Ty::Choice(Metric::NAMES),
            ),
            Default::Str("exact-match"),
        ),
        props(
            one(
                "fewshot",
                "Put this many solved examples before each prompt (0: zero-shot), drawn with a \
                 seed from a split; loglik examples are context + delimiter + gold continuation, \
                 llm-adapters ones the prompt + gold answer word.",
                Ty::int(0, 64),
            ),
            &[
                def_prop(
                    "split",
                    Ty::Choice(&["train", "eval"]),
                    "Where examples come from (an item is never its own example).",
                    Default::Str("train"),
                ),
                def_prop(
                    "seed",
                    Ty::nonneg_int(),
                    "Seed of the draw.",
                    Default::Int(1234),
                ),
                def_prop(
                    "delimiter",
                    Ty::Str,
                    "Between examples and before the item (lm-eval's fewshot_delimiter).",
                    Default::Str("\n\n"),
                ),
            ],
        ),
    ],
};
