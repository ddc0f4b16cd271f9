//! SmolLM2-135M (shared asset; skipped when absent): magnitude pruning raises perplexity on a
//! fixed English paragraph (tests/fixtures/english.txt) monotonically with sparsity.

use std::path::PathBuf;

use crate::model::generate::nll;
use crate::model::{LoadOptions, ModelSource, load};
use crate::prune::{Group, Pattern, Score, UnstructuredSpec, prune_unstructured};

const PARAGRAPH: &str = include_str!("../../../tests/fixtures/english.txt");

#[test]
fn smollm2_perplexity_grows_with_sparsity() {
    let p: PathBuf = super::shared_dir().join("assets/models/smollm2-135m-instruct-q4_1.gguf");
    if !p.exists() {
        eprintln!("SKIP: {} not found (set RORA_SHARED_DIR)", p.display());
        return;
    }
    let mut m = load(&ModelSource::Gguf(p), &LoadOptions::default()).unwrap();
    let ids = m
        .tokenizer
        .encode(PARAGRAPH, false)
        .unwrap()
        .get_ids()
        .to_vec();
    let mut ppl = Vec::new();
    // Magnitude pruning is nested (the 25% smallest are among the 50% smallest), so pruning the
    // same model further in place equals pruning the original to the larger sparsity.
    for s in [0.0, 0.25, 0.5] {
        let spec = UnstructuredSpec {
            score: Score::Magnitude,
            pattern: Pattern::Sparsity {
                sparsity: s,
                group: Group::Matrix,
            },
        };
        let r = prune_unstructured(&mut m.model, &spec, None).unwrap();
        let (total, n) = nll(&m.model, &ids, 512).unwrap();
        let p = (total / n as f64).exp();
        eprintln!(
            "SmolLM2 sparsity {s}: projections {:.4} zero, perplexity {p:.3} on {n} tokens",
            r.projection_sparsity()
        );
        assert!(r.projection_sparsity() >= s - 1e-3);
        ppl.push(p);
    }
    assert!(ppl[0] < 10.0, "{ppl:?}");
    assert!(ppl[0] < ppl[1] && ppl[1] < ppl[2], "{ppl:?}");
}
