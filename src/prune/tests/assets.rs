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

/// Measurement (ignored: about a minute): at 50% sparsity Wanda (per row, calibrated on text
/// other than the evaluated paragraph) against magnitude, and a 25% structured prune.
#[test]
#[ignore]
fn smollm2_wanda_against_magnitude_at_half_sparsity() {
    use crate::prune::{
        Importance, StructuredSpec, apply_structured, collect_input_norms, plan_structured,
    };
    let p: PathBuf = super::shared_dir().join("assets/models/smollm2-135m-instruct-q4_1.gguf");
    if !p.exists() {
        eprintln!("SKIP: {} not found (set RORA_SHARED_DIR)", p.display());
        return;
    }
    let calib_text = [
        "Rivers carry water from the mountains to the sea, shaping valleys along the way.",
        "The library opens at nine in the morning and closes at six in the evening.",
        "She bought apples, bread and cheese at the market before walking home.",
        "Engineers test bridges carefully before they are opened to traffic.",
    ];
    let ppl = |m: &crate::model::Llama, ids: &[u32]| {
        let (t, n) = nll(m, ids, 512).unwrap();
        (t / n as f64).exp()
    };
    let mut m = load(&ModelSource::Gguf(p), &LoadOptions::default()).unwrap();
    let ids = m
        .tokenizer
        .encode(PARAGRAPH, false)
        .unwrap()
        .get_ids()
        .to_vec();
    let seqs: Vec<Vec<u32>> = calib_text
        .iter()
        .map(|s| m.tokenizer.encode(*s, false).unwrap().get_ids().to_vec())
        .collect();
    let calib = collect_input_norms(&mut m.model, &seqs).unwrap();
    let dense = ppl(&m.model, &ids);
    let plan = plan_structured(
        &m.model,
        &StructuredSpec {
            head_ratio: 0.0,
            ffn_ratio: 0.25,
            importance: Importance::Activation,
            global: false,
        },
        Some(&calib),
    )
    .unwrap();
    let small = apply_structured(&m.model, &plan).unwrap();
    let structured = ppl(&small, &ids);
    let params = (small.num_parameters(), m.model.num_parameters());
    drop(small);
    let spec = |score, group| UnstructuredSpec {
        score,
        pattern: Pattern::Sparsity {
            sparsity: 0.5,
            group,
        },
    };
    prune_unstructured(&mut m.model, &spec(Score::Wanda, Group::Row), Some(&calib)).unwrap();
    let wanda = ppl(&m.model, &ids);
    eprintln!(
        "SmolLM2 dense {dense:.3}; FFN -25% (activation, {} of {} params) {structured:.3}; \
         Wanda 50% per row {wanda:.3}",
        params.0, params.1
    );
    assert!(wanda > dense);
}
