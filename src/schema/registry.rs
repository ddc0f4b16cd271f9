//! What stage specs are built from: `const fn` builders for options and properties, and the
//! value lists several kinds share. Each kind's spec lives in its own module under
//! `crate::stages`; defaults follow PEFT / HF Trainer / the DoRA reference recipe where they exist
//! (DESIGN.md, "Reference recipe").

use super::types::{Args, ChildSpec, Default, Kind, PropSpec, Ty};

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

crate::choice_enum! {
    /// A dtype of model weights (`model` and `merge` stages).
    pub enum Dtype {
        F32 = "f32",
        Bf16 = "bf16",
        F16 = "f16",
    }
}

impl Dtype {
    pub fn candle(self) -> candle_core::DType {
        match self {
            Dtype::F32 => candle_core::DType::F32,
            Dtype::Bf16 => candle_core::DType::BF16,
            Dtype::F16 => candle_core::DType::F16,
        }
    }

    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::Bf16 | Dtype::F16 => 2,
        }
    }
}

pub const DTYPES: &[&str] = Dtype::NAMES;

pub const fn child(name: &'static str, doc: &'static str, args: Args) -> ChildSpec {
    ChildSpec {
        name,
        doc,
        args,
        props: &[],
        required: false,
        unless: &[],
        repeat: false,
        default: None,
        default_when: &[],
        optional_when: &[],
        keyed: true,
        keyed_at_default: true,
    }
}

pub const fn prop(name: &'static str, ty: Ty, doc: &'static str) -> PropSpec {
    PropSpec {
        name,
        ty,
        doc,
        required: false,
        default: None,
        keyed_at_default: true,
    }
}

pub const fn req_prop(name: &'static str, ty: Ty, doc: &'static str) -> PropSpec {
    PropSpec {
        name,
        ty,
        doc,
        required: true,
        default: None,
        keyed_at_default: true,
    }
}

pub const fn def_prop(name: &'static str, ty: Ty, doc: &'static str, d: Default) -> PropSpec {
    PropSpec {
        name,
        ty,
        doc,
        required: false,
        default: Some(d),
        keyed_at_default: true,
    }
}

/// A prop added to a kind whose keys were already published, with a default that does what the
/// stage did before it existed: at that default it is left out of the key (written or omitted
/// alike), so cached entries stay valid; any other value is keyed.
pub const fn added_later(mut p: PropSpec) -> PropSpec {
    p.keyed_at_default = false;
    p
}

pub const fn one(name: &'static str, doc: &'static str, ty: Ty) -> ChildSpec {
    child(name, doc, Args::One(ty))
}

pub const fn def(mut c: ChildSpec, d: Default) -> ChildSpec {
    c.default = Some(d);
    c
}

/// Defaults by the value of an earlier option: `(option, values, default)`, first match wins;
/// otherwise the option's `default`.
pub const fn def_when(
    mut c: ChildSpec,
    w: &'static [(&'static str, &'static [&'static str], Default)],
) -> ChildSpec {
    c.default_when = w;
    c
}

/// A required option that may be left out when `option` is written with one of `values`.
pub const fn optional_when(
    mut c: ChildSpec,
    w: &'static [(&'static str, &'static [&'static str])],
) -> ChildSpec {
    c.optional_when = w;
    c
}

/// An option added after keys were published: at its default it is left out of the key (see
/// [`added_later`] for props).
pub const fn added_later_option(mut c: ChildSpec) -> ChildSpec {
    c.keyed_at_default = false;
    c
}

pub const fn required(mut c: ChildSpec) -> ChildSpec {
    c.required = true;
    c
}

/// Required unless one of `others` is given.
pub const fn required_unless(mut c: ChildSpec, others: &'static [&'static str]) -> ChildSpec {
    c.required = true;
    c.unless = others;
    c
}

pub const fn unkeyed(mut c: ChildSpec) -> ChildSpec {
    c.keyed = false;
    c
}

pub const fn props(mut c: ChildSpec, p: &'static [PropSpec]) -> ChildSpec {
    c.props = p;
    c
}

pub const fn repeat(mut c: ChildSpec) -> ChildSpec {
    c.repeat = true;
    c
}

/// What a stage's jobs ask a cluster for (`rora run --executor slurm`), beside the site profile
/// and the flags; part of no key. Every writable kind takes it.
pub const RESOURCES: ChildSpec = unkeyed(props(
    child(
        "resources",
        "Cluster resources of this stage's jobs (Slurm executor; not part of any key): \
         `resources time=\"48h\" mem=\"120G\" gpus=1 cpus=8`. Wins over the site profile; \
         `--resources` wins over it.",
        Args::None,
    ),
    &[
        prop(
            "cpus",
            Ty::int(1, 4096),
            "CPUs per job (`--cpus-per-task`).",
        ),
        prop("gpus", Ty::int(0, 64), "GPUs per job."),
        prop("mem", Ty::Str, "Memory per job: `64G`, `512M`, or MiB."),
        prop(
            "time",
            Ty::Str,
            "Time limit per job: `48h`, `90m`, or minutes.",
        ),
    ],
));

/// Stage kinds whose output is a model directory.
pub const MODEL_LIKE: &[Kind] = &[Kind::Model, Kind::Prune];
