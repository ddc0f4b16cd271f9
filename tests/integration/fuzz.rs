//! Bounded mutation fuzzing of the shipped pipelines: delete, insert, duplicate and swap pieces,
//! then check: no panic, and every diagnostic has a span inside the (possibly lossy) file.

use proptest::prelude::*;

fn shipped() -> Vec<(String, Vec<u8>)> {
    let mut v = vec![];
    for e in std::fs::read_dir(crate::root().join("pipelines")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "kdl") {
            v.push((
                p.strip_prefix(crate::root()).unwrap().display().to_string(),
                std::fs::read(&p).unwrap(),
            ));
        }
    }
    v.sort();
    v
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Duplicate(usize, usize),
    Swap(usize, usize, usize),
}

fn apply(mut b: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let n = b.len().max(1);
    match m {
        Mutation::Delete(at, len) => {
            let at = at % n;
            let end = (at + len).min(b.len());
            b.drain(at.min(b.len())..end);
        }
        Mutation::Insert(at, bytes) => {
            let at = (at % n).min(b.len());
            b.splice(at..at, bytes.iter().copied());
        }
        Mutation::Duplicate(at, len) => {
            let at = (at % n).min(b.len());
            let end = (at + len).min(b.len());
            let piece = b[at..end].to_vec();
            b.splice(end..end, piece);
        }
        Mutation::Swap(a, c, len) => {
            let (a, c) = (a % n, c % n);
            let (lo, hi) = (a.min(c), a.max(c));
            let len = (*len).min(hi - lo).min(b.len().saturating_sub(hi));
            for i in 0..len {
                b.swap(lo + i, hi + i);
            }
        }
    }
    b
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"=".to_vec()),
        Just(b"(sweep)".to_vec()),
        Just(b"/*".to_vec()),
        Just(b"#\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b" -1 ".to_vec()),
        Just(b"\xff".to_vec()),
        Just("é".as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, l)| Mutation::Delete(a, l)),
        (any::<usize>(), token).prop_map(|(a, t)| Mutation::Insert(a, t)),
        (any::<usize>(), 1usize..200).prop_map(|(a, l)| Mutation::Duplicate(a, l)),
        (any::<usize>(), any::<usize>(), 1usize..30).prop_map(|(a, c, l)| Mutation::Swap(a, c, l)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_pipelines_never_panic_and_spans_stay_inside(which in any::<usize>(), muts in proptest::collection::vec(mutation(), 1..4)) {
        let files = shipped();
        let (name, bytes) = &files[which % files.len()];
        let bytes = muts.iter().fold(bytes.clone(), apply);
        let r = rora::check::check_bytes(name, &bytes);
        for d in &r.diagnostics {
            prop_assert!(!d.labels.is_empty(), "{:?} without a span", d.code);
            for l in &d.labels {
                prop_assert!(l.span.end() <= r.file.text.len(), "{:?}: {:?} outside {} bytes", d.code, l.span, r.file.text.len());
            }
        }
        // Rendering must not panic either.
        let _ = rora::diag::render(&r.file, &r.diagnostics, rora::diag::Format::Plain);
    }
}
