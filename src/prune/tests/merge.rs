//! Merging adapters into an unstructured-pruned model keeps its zero pattern exactly.

use crate::adapter::init::uniform_tensor;

use super::{logits, sequences, tiny, weight};
use crate::adapter::{
    AdapterConfig, Method, ScalingRule, Targets, attach, merge_all, trainable_vars,
};
use crate::prune::{
    Group, Pattern, PruneError, PruneReport, Score, UnstructuredSpec, merge_keep_sparsity,
    prune_unstructured,
};

fn randomize_b(model: &crate::model::Llama) {
    for (i, (name, var)) in trainable_vars(model).into_iter().enumerate() {
        if name.ends_with("lora_B.weight") {
            let t =
                uniform_tensor(var.dims(), 0.5, 100 + i as u64, var.dtype(), var.device()).unwrap();
            var.set(&t).unwrap();
        }
    }
}

fn pruned(seed: u64) -> crate::model::Llama {
    let mut m = tiny(seed);
    let spec = UnstructuredSpec {
        score: Score::Magnitude,
        pattern: Pattern::Sparsity {
            sparsity: 0.5,
            group: Group::Matrix,
        },
    };
    prune_unstructured(&mut m, &spec, None).unwrap();
    m
}

#[test]
fn sparse_merge_keeps_the_exact_zero_pattern() {
    for method in [Method::Lora, Method::Dora] {
        let mut m = pruned(10);
        let before = PruneReport::of(&m).unwrap();
        let zeros: Vec<Vec<bool>> = m
            .linears()
            .iter()
            .map(|(p, _)| weight(&m, p).concat().iter().map(|x| *x == 0.0).collect())
            .collect();
        // alpha != r so a scale bug would show in the dense comparison below.
        let cfg = AdapterConfig::new(method, ScalingRule::Rora, 4, 12.0, Targets::AllLinear);
        attach(&mut m, &cfg).unwrap();
        randomize_b(&m);
        // The ordinary merge fills the zeros (what the sparse merge must avoid).
        let mut dense = pruned(10);
        attach(&mut dense, &cfg).unwrap();
        for ((_, a), (_, b)) in trainable_vars(&m).iter().zip(trainable_vars(&dense)) {
            b.set(a.as_tensor()).unwrap();
        }
        merge_all(&mut dense).unwrap();
        assert!(PruneReport::of(&dense).unwrap().projection_sparsity() < 0.01);

        let report = merge_keep_sparsity(&mut m).unwrap();
        assert_eq!(report.dropped.len(), 14);
        assert!(
            report.max_dropped() > 0.1,
            "about half the update falls on zeros"
        );
        assert!(m.linears().iter().all(|(_, l)| l.adapter().is_none()));
        let after = PruneReport::of(&m).unwrap();
        assert_eq!(
            after.modules, before.modules,
            "{method:?}: zero counts changed"
        );
        for (((p, _), z), (_, dl)) in m.linears().iter().zip(&zeros).zip(dense.linears()) {
            let w = weight(&m, p).concat();
            let d: Vec<f32> = dl.weight().flatten_all().unwrap().to_vec1().unwrap();
            for ((x, zero), y) in w.iter().zip(z).zip(&d) {
                if *zero {
                    assert_eq!(*x, 0.0, "{p}");
                } else {
                    assert_eq!(x, y, "{p}: kept entries are the ordinary merge's");
                }
            }
        }
        assert!(logits(&m, &sequences()[0]).iter().all(|x| x.is_finite()));
    }
}

#[test]
fn an_already_merged_model_is_refused() {
    let mut m = pruned(11);
    let cfg = AdapterConfig::new(Method::Lora, ScalingRule::Lora, 2, 5.0, Targets::AllLinear);
    attach(&mut m, &cfg).unwrap();
    merge_all(&mut m).unwrap();
    assert!(matches!(
        merge_keep_sparsity(&mut m),
        Err(PruneError::Module { .. })
    ));
}
