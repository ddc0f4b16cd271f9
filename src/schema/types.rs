//! The vocabulary of the registry: stage kinds, value types with ranges, argument shapes, defaults.

use serde::Serialize;

/// A stage kind, by name. Each kind is one module of `crate::stages` implementing
/// `crate::stages::Stage`; the constants below name the built-in ones (so `Kind::Train` reads and
/// matches like an enum variant), and `crate::stages` looks a kind up by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Kind(pub &'static str);

#[allow(non_upper_case_globals)]
impl Kind {
    pub const Model: Kind = Kind("model");
    pub const Prune: Kind = Kind("prune");
    pub const Data: Kind = Kind("data");
    pub const Adapter: Kind = Kind("adapter");
    pub const Train: Kind = Kind("train");
    pub const Merge: Kind = Kind("merge");
    pub const Eval: Kind = Kind("eval");
    pub const Report: Kind = Kind("report");
    /// A derived kind: the planner adds one `tokens` job per (data, base model) pair that a train
    /// job or a prune job's calibration reads; pipelines cannot write it.
    pub const Tokens: Kind = Kind("tokens");

    pub fn name(self) -> &'static str {
        self.0
    }
}

/// A choice option's values as an enum: `choice_enum! { pub enum Schedule { Linear = "linear",
/// ... } }` gives the enum (serialized as its text), `NAMES` (what the registry's `Ty::Choice`
/// lists, so the list exists once), `name()` and `from_name()`.
#[macro_export]
macro_rules! choice_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[$vm:meta])* $var:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $var),+
        }

        impl $name {
            /// Every value's text, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn name(self) -> &'static str {
                match self {
                    $($name::$var => $text),+
                }
            }

            pub fn from_name(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$var),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// The type of one value, with its allowed range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    /// Integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// Number (integers accepted) in the range; `*_open` excludes the bound.
    Float {
        min: f64,
        max: f64,
        min_open: bool,
        max_open: bool,
    },
    Str,
    Bool,
    /// A local file or directory, relative to the pipeline file; must exist.
    Path,
    /// A glob of local files, relative to the pipeline file; must match something.
    Glob,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
    /// The name of a stage of one of these kinds.
    Stage(&'static [Kind]),
}

impl Ty {
    pub const fn int(min: i64, max: i64) -> Ty {
        Ty::Int { min, max }
    }

    pub const fn pos_int() -> Ty {
        Ty::Int {
            min: 1,
            max: i64::MAX,
        }
    }

    pub const fn nonneg_int() -> Ty {
        Ty::Int {
            min: 0,
            max: i64::MAX,
        }
    }

    /// `(0, inf)`
    pub const fn pos_float() -> Ty {
        Ty::Float {
            min: 0.0,
            max: f64::INFINITY,
            min_open: true,
            max_open: true,
        }
    }

    /// `[0, 1)`
    pub const fn fraction() -> Ty {
        Ty::Float {
            min: 0.0,
            max: 1.0,
            min_open: false,
            max_open: true,
        }
    }

    /// Human description, e.g. `integer >= 1`, `number in [0, 1)`, `one of lora, dora`.
    pub fn describe(&self) -> String {
        match self {
            Ty::Int { min, max } if *max == i64::MAX => format!("integer >= {min}"),
            Ty::Int { min, max } => format!("integer in {min}..={max}"),
            Ty::Float {
                min,
                max,
                min_open,
                max_open,
            } => {
                let lo = if *min_open { "(" } else { "[" };
                let hi = if *max_open { ")" } else { "]" };
                if max.is_infinite() {
                    format!("number {} {min}", if *min_open { ">" } else { ">=" })
                } else {
                    format!("number in {lo}{min}, {max}{hi}")
                }
            }
            Ty::Str => "string".into(),
            Ty::Bool => "boolean".into(),
            Ty::Path => "path (relative to the pipeline file)".into(),
            Ty::Glob => "glob of files (relative to the pipeline file)".into(),
            Ty::Choice(c) => format!("one of {}", c.join(", ")),
            Ty::Stage(k) => {
                let names: Vec<_> = k.iter().map(|k| k.name()).collect();
                format!("name of a {} stage", names.join(" / "))
            }
        }
    }

    /// The short type name (`integer`, `number`, `string`, `boolean`).
    pub fn base_name(&self) -> &'static str {
        match self {
            Ty::Int { .. } => "integer",
            Ty::Float { .. } => "number",
            Ty::Bool => "boolean",
            _ => "string",
        }
    }
}

/// The positional arguments a child node takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Args {
    /// A flag: `table`.
    None,
    /// Exactly one: `rank 8`.
    One(Ty),
    /// `min` or more of one type: `targets "q_proj" "v_proj"`.
    Many { ty: Ty, min: usize },
    /// A fixed tuple of named values: `n-m 2 4`.
    Fixed(&'static [(&'static str, Ty)]),
}

impl Args {
    pub fn count_range(&self) -> (usize, usize) {
        match self {
            Args::None => (0, 0),
            Args::One(_) => (1, 1),
            Args::Many { min, .. } => (*min, usize::MAX),
            Args::Fixed(f) => (f.len(), f.len()),
        }
    }

    /// The type of the `i`-th argument.
    pub fn ty(&self, i: usize) -> Option<Ty> {
        match self {
            Args::None => None,
            Args::One(t) => (i == 0).then_some(*t),
            Args::Many { ty, .. } => Some(*ty),
            Args::Fixed(f) => f.get(i).map(|(_, t)| *t),
        }
    }
}

/// A default value, filled in before binding and hashing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    Int(i64),
    Float(f64),
    Str(&'static str),
    Bool(bool),
    Strs(&'static [&'static str]),
}

impl Default {
    /// Whether the default is a valid value for `args` (registry self-check).
    pub fn fits(&self, args: &Args) -> bool {
        match (self, args) {
            (Default::Strs(v), Args::Many { ty, min }) => {
                v.len() >= *min && v.iter().all(|s| str_fits(s, ty))
            }
            (d, Args::One(t)) => match (d, t) {
                (Default::Int(i), Ty::Int { min, max }) => i >= min && i <= max,
                (Default::Int(i), Ty::Float { min, max, .. }) => {
                    (*i as f64) >= *min && (*i as f64) <= *max
                }
                (Default::Float(f), Ty::Float { min, max, .. }) => f >= min && f <= max,
                (Default::Str(s), t) => str_fits(s, t),
                (Default::Bool(_), Ty::Bool) => true,
                _ => false,
            },
            _ => false,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Default::Int(i) => i.to_string(),
            Default::Float(f) => f.to_string(),
            Default::Str(s) => format!("{s:?}"),
            Default::Bool(b) => format!("#{b}"),
            Default::Strs(v) => v
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

fn str_fits(s: &str, ty: &Ty) -> bool {
    match ty {
        Ty::Choice(c) => c.contains(&s),
        Ty::Str | Ty::Path | Ty::Glob => true,
        _ => false,
    }
}

/// A `key=value` property.
#[derive(Debug, Clone, Copy)]
pub struct PropSpec {
    pub name: &'static str,
    pub ty: Ty,
    pub doc: &'static str,
    pub required: bool,
    pub default: Option<Default>,
    /// `false` for a prop added after keys were published ([`super::registry::added_later`]): at
    /// its default it is left out of the key, so adding it moved no existing key.
    pub keyed_at_default: bool,
}

/// A child node (an option of a stage).
#[derive(Debug, Clone, Copy)]
pub struct ChildSpec {
    pub name: &'static str,
    pub doc: &'static str,
    pub args: Args,
    pub props: &'static [PropSpec],
    pub required: bool,
    /// A required option may be left out when one of these options is given (an adapter's `rank`
    /// when it loads one with `path` or `hub`).
    pub unless: &'static [&'static str],
    /// May appear more than once (`module`, `plot`).
    pub repeat: bool,
    pub default: Option<Default>,
    /// Defaults that replace `default` when an earlier option has one of the given values
    /// (`(option, values, default)`, first match wins): an adapter's `targets` for `method
    /// "series"`.
    pub default_when: &'static [(&'static str, &'static [&'static str], Default)],
    /// A required option may be left out when an option has one of these literal values (an
    /// adapter's `rank` for the bottleneck methods).
    pub optional_when: &'static [(&'static str, &'static [&'static str])],
    /// Part of the stage key (false for options that do not change outputs, e.g. `device`, eval `batch-size`).
    pub keyed: bool,
    /// False for an option added after keys were published: at its default (args and props) it
    /// stays out of the key, so existing keys do not move (`registry::added_later_option`).
    pub keyed_at_default: bool,
}

/// One stage kind.
#[derive(Debug, Clone, Copy)]
pub struct KindSpec {
    pub kind: Kind,
    pub doc: &'static str,
    /// Bumped when the kind's runner changes its outputs for the same params (part of the key).
    pub version: u32,
    /// Properties on the stage node itself: stage references.
    pub props: &'static [PropSpec],
    pub children: &'static [ChildSpec],
}

impl KindSpec {
    pub fn child(&self, name: &str) -> Option<&'static ChildSpec> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn prop(&self, name: &str) -> Option<&'static PropSpec> {
        self.props.iter().find(|p| p.name == name)
    }
}

impl ChildSpec {
    pub fn prop(&self, name: &str) -> Option<&'static PropSpec> {
        self.props.iter().find(|p| p.name == name)
    }
}
