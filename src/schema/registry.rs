//! The registry itself: every stage kind and its options. Defaults follow PEFT / HF Trainer / the
//! DoRA reference recipe where they exist (DESIGN.md, "Reference recipe").

use super::types::{Args, ChildSpec, Default, Kind, KindSpec, PropSpec, Ty};

/// Top-level nodes that are not stages.
pub const TOP_LEVEL: [&str; 3] = ["sweep", "zip", "param"];

/// The commonsense tasks rora knows (file names `datasets/commonsense/<task>.{train,eval}.jsonl[.gz]`).
pub const TASKS: &[&str] = &[
    "boolq",
    "piqa",
    "siqa",
    "hellaswag",
    "winogrande",
    "arc-e",
    "arc-c",
    "obqa",
];

pub const DTYPES: &[&str] = &["f32", "bf16", "f16"];

const fn child(name: &'static str, doc: &'static str, args: Args) -> ChildSpec {
    ChildSpec {
        name,
        doc,
        args,
        props: &[],
        required: false,
        repeat: false,
        default: None,
        keyed: true,
    }
}

const fn prop(name: &'static str, ty: Ty, doc: &'static str) -> PropSpec {
    PropSpec {
        name,
        ty,
        doc,
        required: false,
        default: None,
    }
}

const fn req_prop(name: &'static str, ty: Ty, doc: &'static str) -> PropSpec {
    PropSpec {
        name,
        ty,
        doc,
        required: true,
        default: None,
    }
}

const fn def_prop(name: &'static str, ty: Ty, doc: &'static str, d: Default) -> PropSpec {
    PropSpec {
        name,
        ty,
        doc,
        required: false,
        default: Some(d),
    }
}

const fn one(name: &'static str, doc: &'static str, ty: Ty) -> ChildSpec {
    child(name, doc, Args::One(ty))
}

const fn def(mut c: ChildSpec, d: Default) -> ChildSpec {
    c.default = Some(d);
    c
}

const fn required(mut c: ChildSpec) -> ChildSpec {
    c.required = true;
    c
}

const fn unkeyed(mut c: ChildSpec) -> ChildSpec {
    c.keyed = false;
    c
}

const fn props(mut c: ChildSpec, p: &'static [PropSpec]) -> ChildSpec {
    c.props = p;
    c
}

const fn repeat(mut c: ChildSpec) -> ChildSpec {
    c.repeat = true;
    c
}

const MODEL_LIKE: &[Kind] = &[Kind::Model, Kind::Prune];

const MODEL: KindSpec = KindSpec {
    kind: Kind::Model,
    doc: "A base LLaMA-family model: from the Hugging Face hub, a local HF directory, a GGUF file, or a random tiny LLaMA.",
    version: 1,
    props: &[],
    children: &[
        props(
            one(
                "hub",
                "Hugging Face hub model id, e.g. \"meta-llama/Meta-Llama-3-8B\".",
                Ty::Str,
            ),
            &[def_prop(
                "revision",
                Ty::Str,
                "Branch, tag or commit; pin a commit for reproducible keys.",
                Default::Str("main"),
            )],
        ),
        one(
            "path",
            "A local Hugging Face model directory (config.json, *.safetensors, tokenizer.json).",
            Ty::Path,
        ),
        one(
            "gguf",
            "A local GGUF file (llama.cpp format; quantized weights are dequantized).",
            Ty::Path,
        ),
        props(
            child(
                "random",
                "A seeded random-initialised tiny LLaMA with a built-in byte-level tokenizer (tests, quickstart).",
                Args::None,
            ),
            &[
                def_prop(
                    "layers",
                    Ty::int(1, 256),
                    "Decoder layers.",
                    Default::Int(2),
                ),
                def_prop(
                    "hidden",
                    Ty::int(8, 16384),
                    "Hidden size.",
                    Default::Int(64),
                ),
                def_prop(
                    "heads",
                    Ty::int(1, 256),
                    "Attention heads.",
                    Default::Int(4),
                ),
                def_prop(
                    "kv-heads",
                    Ty::int(1, 256),
                    "Key/value heads (GQA).",
                    Default::Int(2),
                ),
                def_prop(
                    "ffn",
                    Ty::int(1, 65536),
                    "FFN (gate/up) width.",
                    Default::Int(128),
                ),
                def_prop(
                    "seed",
                    Ty::nonneg_int(),
                    "Weight initialisation seed.",
                    Default::Int(0),
                ),
            ],
        ),
        def(
            one(
                "dtype",
                "Compute dtype of the frozen base weights.",
                Ty::Choice(DTYPES),
            ),
            Default::Str("f32"),
        ),
        unkeyed(def(
            one(
                "device",
                "Where to run.",
                Ty::Choice(&["auto", "cpu", "cuda"]),
            ),
            Default::Str("auto"),
        )),
    ],
};

const PRUNE: KindSpec = KindSpec {
    kind: Kind::Prune,
    doc: "Prune a model: unstructured (magnitude, wanda), semi-structured (n:m) or structured (attention heads, FFN channels).",
    version: 1,
    props: &[req_prop(
        "model",
        Ty::Stage(MODEL_LIKE),
        "The model to prune.",
    )],
    children: &[
        required(one(
            "method",
            "Pruning method.",
            Ty::Choice(&["magnitude", "wanda", "n:m", "heads", "ffn"]),
        )),
        one(
            "sparsity",
            "Fraction of weights (or heads / channels) to remove.",
            Ty::fraction(),
        ),
        child(
            "n-m",
            "Keep n weights in every group of m (n:m sparsity).",
            Args::Fixed(&[("n", Ty::int(1, 64)), ("m", Ty::int(2, 64))]),
        ),
        one(
            "target-params",
            "Structured pruning: prune until the model has about this many parameters.",
            Ty::pos_int(),
        ),
        props(
            child(
                "calibration",
                "Calibration rows for activation-aware methods (wanda, heads, ffn).",
                Args::None,
            ),
            &[
                req_prop("data", Ty::Stage(&[Kind::Data]), "A data stage."),
                def_prop(
                    "rows",
                    Ty::int(1, 1_000_000),
                    "Rows to run.",
                    Default::Int(128),
                ),
                def_prop(
                    "max-len",
                    Ty::int(8, 1 << 20),
                    "Tokens per row.",
                    Default::Int(256),
                ),
            ],
        ),
        def(
            one(
                "seed",
                "Seed for calibration row sampling.",
                Ty::nonneg_int(),
            ),
            Default::Int(0),
        ),
    ],
};

const DATA: KindSpec = KindSpec {
    kind: Kind::Data,
    doc: "Training rows: multiple-choice commonsense rows (id, question, choices, label) or instruction rows, from files or the hub.",
    version: 1,
    props: &[],
    children: &[
        child(
            "files",
            "Local files or globs (.jsonl, .json, .parquet, optionally .gz). The task of each file comes from its name (boolq.train.jsonl -> boolq).",
            Args::Many {
                ty: Ty::Glob,
                min: 1,
            },
        ),
        props(
            one("hub", "A Hugging Face hub dataset id.", Ty::Str),
            &[
                def_prop("split", Ty::Str, "Split to read.", Default::Str("train")),
                prop("config", Ty::Str, "Dataset configuration name."),
                def_prop(
                    "revision",
                    Ty::Str,
                    "Branch, tag or commit.",
                    Default::Str("main"),
                ),
            ],
        ),
        def(
            one(
                "format",
                "File format; auto uses the extension.",
                Ty::Choice(&["auto", "jsonl", "json", "parquet"]),
            ),
            Default::Str("auto"),
        ),
        def(
            one(
                "template",
                "Prompt template.",
                Ty::Choice(&["llm-adapters", "alpaca", "chatml", "raw"]),
            ),
            Default::Str("llm-adapters"),
        ),
        one(
            "task",
            "Task of every row (overrides the file name).",
            Ty::Choice(TASKS),
        ),
        def(
            one("max-len", "Cutoff length in tokens.", Ty::int(8, 1 << 20)),
            Default::Int(256),
        ),
        def(
            one(
                "train-on-inputs",
                "Compute the loss over the prompt too (LLM-Adapters default), not only the response.",
                Ty::Bool,
            ),
            Default::Bool(true),
        ),
        props(
            def(
                one(
                    "validation",
                    "Rows held out for validation.",
                    Ty::nonneg_int(),
                ),
                Default::Int(0),
            ),
            &[def_prop(
                "seed",
                Ty::nonneg_int(),
                "Seed of the held-out split.",
                Default::Int(42),
            )],
        ),
        one(
            "limit",
            "Use at most this many rows (after shuffling with the validation seed).",
            Ty::pos_int(),
        ),
    ],
};

const ADAPTER: KindSpec = KindSpec {
    kind: Kind::Adapter,
    doc: "A low-rank adapter on a model: LoRA or DoRA, with the scaling rule lora (alpha/r), rora (alpha/sqrt(r), PEFT use_rslora) or fixed.",
    version: 1,
    props: &[req_prop(
        "model",
        Ty::Stage(MODEL_LIKE),
        "The model to adapt.",
    )],
    children: &[
        def(
            one(
                "method",
                "lora, or dora (weight-decomposed: learned magnitude per output row).",
                Ty::Choice(&["lora", "dora"]),
            ),
            Default::Str("lora"),
        ),
        props(
            def(
                one(
                    "scaling",
                    "Scale of B A: lora = alpha/r, rora = alpha/sqrt(r) (PEFT use_rslora), fixed = value.",
                    Ty::Choice(&["lora", "rora", "fixed"]),
                ),
                Default::Str("lora"),
            ),
            &[prop(
                "value",
                Ty::pos_float(),
                "The scale, for scaling \"fixed\".",
            )],
        ),
        required(one(
            "rank",
            "Rank r of A [r, in] and B [out, r].",
            Ty::int(1, 65536),
        )),
        def(
            one(
                "alpha",
                "alpha (PEFT lora_alpha). Fixed across ranks unless alpha-per-rank is given.",
                Ty::pos_float(),
            ),
            Default::Float(8.0),
        ),
        one(
            "alpha-per-rank",
            "Alpha policy proportional to rank: alpha = k * r (replaces alpha).",
            Ty::pos_float(),
        ),
        def(
            child(
                "targets",
                "Projection names (q_proj k_proj v_proj o_proj gate_proj up_proj down_proj) or all-linear.",
                Args::Many {
                    ty: Ty::Str,
                    min: 1,
                },
            ),
            Default::Strs(&["q_proj", "v_proj"]),
        ),
        one(
            "target-regex",
            "Regex over module paths (model.layers.N.self_attn.q_proj); replaces targets.",
            Ty::Str,
        ),
        child(
            "layers",
            "Only these layer indices.",
            Args::Many {
                ty: Ty::nonneg_int(),
                min: 1,
            },
        ),
        child(
            "layer-range",
            "Only layers first..=last.",
            Args::Fixed(&[("first", Ty::nonneg_int()), ("last", Ty::nonneg_int())]),
        ),
        def(
            one("dropout", "Dropout on the adapter input.", Ty::fraction()),
            Default::Float(0.0),
        ),
        def(
            one(
                "init",
                "peft: A kaiming-uniform, B = 0; gaussian: A ~ N(0, 1/r), B = 0.",
                Ty::Choice(&["peft", "gaussian"]),
            ),
            Default::Str("peft"),
        ),
        repeat(props(
            one(
                "module",
                "Per-module override: a regex over module paths with its own rank / alpha (PEFT rank_pattern / alpha_pattern).",
                Ty::Str,
            ),
            &[
                prop("rank", Ty::int(1, 65536), "Rank for matching modules."),
                prop("alpha", Ty::pos_float(), "Alpha for matching modules."),
            ],
        )),
        def(
            one("seed", "Initialisation seed of A.", Ty::nonneg_int()),
            Default::Int(0),
        ),
    ],
};

const TRAIN: KindSpec = KindSpec {
    kind: Kind::Train,
    doc: "Train an adapter on a dataset with AdamW (adapter parameters only; the base stays frozen).",
    version: 1,
    props: &[
        req_prop(
            "adapter",
            Ty::Stage(&[Kind::Adapter]),
            "The adapter to train.",
        ),
        req_prop("data", Ty::Stage(&[Kind::Data]), "The training data."),
    ],
    children: &[
        def(
            one(
                "epochs",
                "Passes over the data (ignored when steps is given).",
                Ty::Float {
                    min: 0.0,
                    max: 10000.0,
                    min_open: true,
                    max_open: false,
                },
            ),
            Default::Float(1.0),
        ),
        one(
            "steps",
            "Optimizer steps (overrides epochs).",
            Ty::pos_int(),
        ),
        props(
            def(
                one("batch", "Examples per optimizer step.", Ty::int(1, 65536)),
                Default::Int(16),
            ),
            &[prop(
                "micro",
                Ty::int(1, 65536),
                "Examples per forward pass (gradient accumulation = batch / micro); default = batch.",
            )],
        ),
        def(
            one(
                "lr",
                "Peak learning rate.",
                Ty::Float {
                    min: 0.0,
                    max: 1.0,
                    min_open: true,
                    max_open: false,
                },
            ),
            Default::Float(2e-4),
        ),
        def(
            one("warmup", "Linear warmup steps.", Ty::nonneg_int()),
            Default::Int(0),
        ),
        one(
            "warmup-ratio",
            "Warmup as a fraction of all steps (replaces warmup).",
            Ty::fraction(),
        ),
        def(
            one(
                "schedule",
                "Learning-rate schedule after warmup.",
                Ty::Choice(&["linear", "cosine", "constant"]),
            ),
            Default::Str("linear"),
        ),
        def(
            one(
                "weight-decay",
                "AdamW decoupled weight decay.",
                Ty::Float {
                    min: 0.0,
                    max: 1.0,
                    min_open: false,
                    max_open: false,
                },
            ),
            Default::Float(0.0),
        ),
        def(
            one(
                "grad-clip",
                "Clip the global gradient L2 norm to this value.",
                Ty::pos_float(),
            ),
            Default::Float(1.0),
        ),
        props(
            def(
                one("optimizer", "Optimizer.", Ty::Choice(&["adamw"])),
                Default::Str("adamw"),
            ),
            &[
                def_prop(
                    "beta1",
                    Ty::fraction(),
                    "First-moment decay.",
                    Default::Float(0.9),
                ),
                def_prop(
                    "beta2",
                    Ty::fraction(),
                    "Second-moment decay.",
                    Default::Float(0.999),
                ),
                def_prop(
                    "eps",
                    Ty::Float {
                        min: 0.0,
                        max: 1.0,
                        min_open: true,
                        max_open: true,
                    },
                    "Denominator epsilon.",
                    Default::Float(1e-8),
                ),
            ],
        ),
        def(
            one("seed", "Seed for data order and dropout.", Ty::nonneg_int()),
            Default::Int(42),
        ),
        unkeyed(one(
            "checkpoint-every",
            "Save a resumable checkpoint every N steps.",
            Ty::pos_int(),
        )),
        one(
            "eval-every",
            "Validation loss every N steps.",
            Ty::pos_int(),
        ),
    ],
};

const MERGE: KindSpec = KindSpec {
    kind: Kind::Merge,
    doc: "Merge a trained adapter into its base weights (W' = W + s B A; DoRA: W' = m/||W + s B A|| (W + s B A)) and save an HF directory.",
    version: 1,
    props: &[req_prop(
        "from",
        Ty::Stage(&[Kind::Train]),
        "The train stage whose adapter is merged.",
    )],
    children: &[
        def(
            one(
                "dtype",
                "dtype of the saved merged weights.",
                Ty::Choice(DTYPES),
            ),
            Default::Str("f32"),
        ),
        one(
            "keep-sparsity",
            "Keep the base's zero pattern (for unstructured-pruned bases): the merged weights are multiplied by the base's nonzero mask, so the merged model stays as sparse as the base. The update that falls on pruned positions is dropped; the stage's summary (rora show-output) reports how much, per module. Off when absent.",
            Ty::Bool,
        ),
    ],
};

const EVAL: KindSpec = KindSpec {
    kind: Kind::Eval,
    doc: "Evaluate a model (base, pruned, merged, or a train stage's unmerged adapter) on commonsense tasks.",
    version: 1,
    props: &[req_prop(
        "model",
        Ty::Stage(&[Kind::Model, Kind::Prune, Kind::Merge, Kind::Train]),
        "What to evaluate.",
    )],
    children: &[
        required(child(
            "tasks",
            "Tasks to evaluate.",
            Args::Many {
                ty: Ty::Choice(TASKS),
                min: 1,
            },
        )),
        def(
            one(
                "protocol",
                "llm-adapters: generation + first answer-label match; loglik: lm-eval multiple choice (acc, acc_norm).",
                Ty::Choice(&["llm-adapters", "loglik"]),
            ),
            Default::Str("llm-adapters"),
        ),
        one(
            "limit",
            "At most this many rows per task (the first rows of the file).",
            Ty::pos_int(),
        ),
        unkeyed(def(
            one(
                "batch-size",
                "Rows per batch (results do not depend on it).",
                Ty::int(1, 4096),
            ),
            Default::Int(8),
        )),
        one(
            "dir",
            "Directory with <task>.eval.jsonl[.gz] files; default: the subsets shipped with rora (datasets/commonsense).",
            Ty::Path,
        ),
        def(
            one(
                "split",
                "Which file of each task: <task>.<split>.jsonl.",
                Ty::Choice(&["eval", "train"]),
            ),
            Default::Str("eval"),
        ),
        def(
            one(
                "max-new-tokens",
                "Generation length (llm-adapters protocol).",
                Ty::int(1, 4096),
            ),
            Default::Int(32),
        ),
        def(
            one("beams", "Beam width (1 = greedy).", Ty::int(1, 16)),
            Default::Int(1),
        ),
    ],
};

const REPORT: KindSpec = KindSpec {
    kind: Kind::Report,
    doc: "Collect the results of every sweep point of a stage into tables and plots.",
    version: 1,
    props: &[req_prop(
        "from",
        Ty::Stage(&[Kind::Eval, Kind::Train]),
        "Eval stage (accuracy) or train stage (loss curves).",
    )],
    children: &[
        child("table", "A table with one row per sweep point.", Args::None),
        repeat(one(
            "plot",
            "A plot.",
            Ty::Choice(&[
                "accuracy-vs-rank",
                "loss-curves",
                "scale-vs-rank",
                "accuracy-vs-scale",
            ]),
        )),
        def(
            child(
                "format",
                "Table formats.",
                Args::Many {
                    ty: Ty::Choice(&["md", "csv", "json"]),
                    min: 1,
                },
            ),
            Default::Strs(&["md"]),
        ),
        unkeyed(one(
            "out",
            "Also copy the report into this directory (relative to the pipeline file).",
            Ty::Str,
        )),
    ],
};

/// The derived `tokens` kind: a data entry tokenized with a model entry's tokenizer. No options
/// (what it depends on is its two upstream keys); bump `version` when tokenization changes.
pub static TOKENS: KindSpec = KindSpec {
    kind: Kind::Tokens,
    doc: "A data stage's rows tokenized with a model's tokenizer (planned by rora, not written in pipelines).",
    version: 1,
    props: &[],
    children: &[],
};

/// Every kind a pipeline may write, in `Kind::ALL` order.
pub static KINDS: [KindSpec; 8] = [MODEL, PRUNE, DATA, ADAPTER, TRAIN, MERGE, EVAL, REPORT];
