//! Unstructured pruning: exact zero counts per group, N:M patterns, Wanda scores by hand.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::{sequences, tiny, weight};
use crate::adapter::linear::Linear;
use crate::model::config::{PROJECTIONS, module_path};
use crate::prune::unstructured::wanda_scores;
use crate::prune::{
    Group, InputNorms, Pattern, PruneError, Score, UnstructuredSpec, collect_input_norms, mask,
    prune_unstructured,
};

fn spec(score: Score, sparsity: f64, group: Group) -> UnstructuredSpec {
    UnstructuredSpec {
        score,
        pattern: Pattern::Sparsity { sparsity, group },
    }
}

#[test]
fn magnitude_per_matrix_zeroes_exactly_floor_s_n_of_the_smallest() {
    let mut m = tiny(1);
    let before: Vec<Vec<Vec<f32>>> = m.linears().iter().map(|(p, _)| weight(&m, p)).collect();
    let report =
        prune_unstructured(&mut m, &spec(Score::Magnitude, 0.3, Group::Matrix), None).unwrap();
    assert_eq!(report.modules.len(), 2 * PROJECTIONS.len());
    for (ms, old) in report.modules.iter().zip(&before) {
        assert_eq!(
            ms.zeros,
            (0.3 * ms.total as f64).floor() as usize,
            "{}",
            ms.module
        );
        let new = weight(&m, &ms.module);
        let (mut max_pruned, mut min_kept) = (0f32, f32::MAX);
        for (ro, rn) in old.iter().zip(&new) {
            for (o, n) in ro.iter().zip(rn) {
                if *n == 0.0 {
                    max_pruned = max_pruned.max(o.abs());
                } else {
                    assert_eq!(o, n, "kept weights are unchanged");
                    min_kept = min_kept.min(o.abs());
                }
            }
        }
        assert!(
            max_pruned <= min_kept,
            "{}: {max_pruned} > {min_kept}",
            ms.module
        );
    }
    let proj: usize = report.modules.iter().map(|m| m.total).sum();
    let zeros: usize = report.modules.iter().map(|m| m.zeros).sum();
    assert_eq!(report.total_params - report.nonzero_params, zeros);
    assert!(
        proj < report.total_params,
        "embeddings and norms are counted too"
    );
    let layers = report.layer_sparsity();
    assert_eq!(layers.len(), 2);
    assert!(layers.iter().all(|s| (s - 0.3).abs() < 1e-3), "{layers:?}");
    assert!(report.to_string().contains("layer   1"));
}

#[test]
fn per_row_and_global_groups_count_exactly() {
    let mut m = tiny(2);
    prune_unstructured(&mut m, &spec(Score::Magnitude, 0.5, Group::Row), None).unwrap();
    for (p, l) in m.linears() {
        let cols = l.shape().1;
        for row in weight(&m, &p) {
            assert_eq!(row.iter().filter(|x| **x == 0.0).count(), cols / 2, "{p}");
        }
    }
    let mut g = tiny(3);
    let old: HashMap<String, Vec<Vec<f32>>> = g
        .linears()
        .iter()
        .map(|(p, _)| (p.clone(), weight(&g, p)))
        .collect();
    let r = prune_unstructured(&mut g, &spec(Score::Magnitude, 0.4, Group::Global), None).unwrap();
    let total: usize = r.modules.iter().map(|m| m.total).sum();
    let zeros: usize = r.modules.iter().map(|m| m.zeros).sum();
    assert_eq!(zeros, (0.4 * total as f64).floor() as usize);
    // One threshold for the whole model: every pruned |w| <= every kept |w|, in any module.
    let (mut max_pruned, mut min_kept) = (0f32, f32::MAX);
    for (p, o) in &old {
        for (ro, rn) in o.iter().zip(weight(&g, p)) {
            for (a, b) in ro.iter().zip(rn) {
                if b == 0.0 {
                    max_pruned = max_pruned.max(a.abs());
                } else {
                    min_kept = min_kept.min(a.abs());
                }
            }
        }
    }
    assert!(max_pruned <= min_kept);
    // Projections differ in how much they lose (init std is the same, sizes differ: not uniform).
    assert!(r.modules.iter().any(|m| (m.sparsity() - 0.4).abs() > 1e-3));
}

#[test]
fn two_of_four_keeps_the_two_largest_in_every_group() {
    let mut m = tiny(4);
    let old: Vec<(String, Vec<Vec<f32>>)> = m
        .linears()
        .iter()
        .map(|(p, _)| (p.clone(), weight(&m, p)))
        .collect();
    let spec = UnstructuredSpec {
        score: Score::Magnitude,
        pattern: Pattern::NofM { n: 2, m: 4 },
    };
    let r = prune_unstructured(&mut m, &spec, None).unwrap();
    for ((p, o), ms) in old.iter().zip(&r.modules) {
        assert_eq!(ms.zeros * 2, ms.total, "{p}");
        for (ro, rn) in o.iter().zip(weight(&m, p)) {
            for (go, gn) in ro.chunks(4).zip(rn.chunks(4)) {
                assert_eq!(gn.iter().filter(|x| **x == 0.0).count(), 2);
                let mut mags: Vec<f32> = go.iter().map(|x| x.abs()).collect();
                mags.sort_by(f32::total_cmp);
                for (a, b) in go.iter().zip(gn) {
                    if *b != 0.0 {
                        assert!(a.abs() >= mags[2], "kept a non-top-2 weight in {p}");
                    }
                }
            }
        }
    }
    let bad = UnstructuredSpec {
        score: Score::Magnitude,
        pattern: Pattern::NofM { n: 2, m: 5 },
    };
    assert!(matches!(
        prune_unstructured(&mut tiny(4), &bad, None),
        Err(PruneError::Module { .. })
    ));
}

/// Reference: Wanda's metric |W_ij| * ||X_j||_2 worked by hand on a 2x3 layer.
#[test]
fn wanda_scores_and_row_choice_match_a_hand_computation() {
    let w = Tensor::from_vec(vec![1f32, -2.0, 3.0, 4.0, 0.5, -8.0], (2, 3), &Device::Cpu).unwrap();
    let lin = Linear::new(w, None);
    let mut calib = InputNorms::default();
    // ||X|| = [3, 1, 0.25] -> squared sums [9, 1, 0.0625].
    calib.sq_sums.insert("l".into(), vec![9.0, 1.0, 0.0625]);
    let s = wanda_scores("l", &lin, &calib).unwrap();
    assert_eq!(s, [3.0, 2.0, 0.75, 12.0, 0.5, 2.0]);
    // One of three per row: Wanda drops (0,2) and (1,1); magnitude would drop (0,0) in row 0.
    assert_eq!(
        mask::lowest_per_row(&s, 3, 1),
        [false, false, true, false, true, false]
    );
    assert!(wanda_scores("missing", &lin, &calib).is_err());
}

/// Reference: the input of layer 0's q/k/v is RMSNorm(embedding) (norm weights are 1 in random
/// models), computed here on the host from the embedding matrix.
#[test]
fn calibration_norms_equal_the_normed_embeddings() {
    let mut m = tiny(5);
    let seqs = sequences();
    let calib = collect_input_norms(&mut m, &seqs).unwrap();
    assert!(m.linears().iter().all(|(_, l)| l.adapter().is_none()));
    let emb: Vec<Vec<f32>> = m.embed_tokens().to_vec2().unwrap();
    let eps = m.config().rms_norm_eps;
    let h = m.config().hidden_size;
    let mut sq = vec![0f64; h];
    for id in seqs.iter().flatten() {
        let row = &emb[*id as usize];
        let ms: f64 = row.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / h as f64;
        let r = 1.0 / (ms + eps).sqrt();
        for (j, x) in row.iter().enumerate() {
            sq[j] += (f64::from(*x) * r).powi(2);
        }
    }
    let n_tokens: usize = seqs.iter().map(Vec::len).sum();
    assert_eq!(calib.tokens, n_tokens);
    let got = &calib.sq_sums[&module_path(0, "k_proj")];
    for (a, b) in got.iter().zip(&sq) {
        assert!((a - b).abs() < 1e-3 * b.max(1.0), "{a} vs {b}");
    }
    // Wanda per row on the real model: exactly half of each row, the lowest |W| * ||X||.
    let path = module_path(1, "down_proj");
    let lins = m.linears();
    let (_, l) = lins.iter().find(|(p, _)| *p == path).unwrap();
    let scores = wanda_scores(&path, l, &calib).unwrap();
    let cols = l.shape().1;
    let expect = mask::lowest_per_row(&scores, cols, cols / 2);
    drop(lins);
    prune_unstructured(&mut m, &spec(Score::Wanda, 0.5, Group::Row), Some(&calib)).unwrap();
    let got: Vec<bool> = weight(&m, &path)
        .concat()
        .iter()
        .map(|x| *x == 0.0)
        .collect();
    assert_eq!(got, expect);
}

#[test]
fn bad_inputs_are_errors() {
    let mut m = tiny(6);
    assert!(matches!(
        prune_unstructured(&mut m, &spec(Score::Magnitude, 1.0, Group::Matrix), None),
        Err(PruneError::BadSparsity(_))
    ));
    assert!(matches!(
        prune_unstructured(&mut m, &spec(Score::Wanda, 0.5, Group::Row), None),
        Err(PruneError::Module { .. })
    ));
}
