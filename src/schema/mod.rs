//! The schema registry: one [`KindSpec`] per stage kind, declaring its properties (stage references),
//! its children (options) with argument types, ranges, defaults and docs. The same registry drives
//! the shape checker, `rora schema [kind]`, typed parameter binding, the cache-key parameters, and
//! the generated files in `schemas/` (drift-tested; `RORA_UPDATE_SCHEMAS=1` rewrites them).

pub mod generate;
pub mod registry;
pub mod types;

pub use registry::{KINDS, TASKS, TOKENS, TOP_LEVEL};
pub use types::{Args, ChildSpec, Default, Kind, KindSpec, PropSpec, Ty};

/// The spec of a stage kind.
pub fn spec(kind: Kind) -> &'static KindSpec {
    match kind {
        Kind::Tokens => &TOKENS,
        // invariant: KINDS has one entry per Kind of Kind::ALL, in that order (tested).
        k => &KINDS[k as usize],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_complete_ordered_and_consistent() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(KINDS[i].kind, *k);
            assert_eq!(Kind::from_name(k.name()), Some(*k));
            let spec = spec(*k);
            let mut names: Vec<_> = spec.children.iter().map(|c| c.name).collect();
            names.sort();
            names.dedup();
            assert_eq!(
                names.len(),
                spec.children.len(),
                "duplicate child in {}",
                k.name()
            );
            for c in spec.children {
                if let Some(d) = &c.default {
                    assert!(
                        d.fits(&c.args),
                        "{}.{} default does not fit its type",
                        k.name(),
                        c.name
                    );
                }
                for p in c.props {
                    if let Some(d) = &p.default {
                        assert!(
                            d.fits(&Args::One(p.ty)),
                            "{}.{}.{} default",
                            k.name(),
                            c.name,
                            p.name
                        );
                    }
                }
            }
        }
    }
}
