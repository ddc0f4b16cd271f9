//! Padding (left and right) and incremental decoding give the same logits as the plain forward.

use candle_core::{DType, Device, IndexOp, Tensor};

use super::{ids, max_abs_diff, random_model, spec};
use crate::lm::{CausalLm, IncrementalLm};
use crate::model::generate::greedy;

fn ones(t: usize) -> Tensor {
    Tensor::ones((1, t), DType::U32, &Device::Cpu).unwrap()
}

#[test]
fn left_and_right_padding_match_unpadded_rows() {
    let m = random_model(&spec(11));
    let a: Vec<u32> = vec![5, 77, 120, 33, 9, 200, 17];
    let b: Vec<u32> = vec![44, 3, 250, 61];
    let la = m.forward(&ids(&[&a]), &ones(a.len())).unwrap();
    let lb = m.forward(&ids(&[&b]), &ones(b.len())).unwrap();
    let pad = 2u32;
    // left padding: b gets 3 pads in front
    let left_b = [vec![pad; 3], b.clone()].concat();
    let mask = Tensor::from_vec(
        [vec![1u32; 7], [vec![0; 3], vec![1; 4]].concat()].concat(),
        (2, 7),
        &Device::Cpu,
    )
    .unwrap();
    let out = m.forward(&ids(&[&a, &left_b]), &mask).unwrap();
    assert!(max_abs_diff(&out.i(0).unwrap(), &la.i(0).unwrap()) < 1e-5);
    let d = max_abs_diff(&out.i((1, 3..)).unwrap(), &lb.i(0).unwrap());
    assert!(d < 1e-5, "left-padded row differs by {d}");
    assert!(
        out.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|v| v.is_finite())
    );
    // right padding
    let right_b = [b.clone(), vec![pad; 3]].concat();
    let mask = Tensor::from_vec(
        [vec![1u32; 7], [vec![1; 4], vec![0; 3]].concat()].concat(),
        (2, 7),
        &Device::Cpu,
    )
    .unwrap();
    let out = m.forward(&ids(&[&a, &right_b]), &mask).unwrap();
    let d = max_abs_diff(&out.i((1, ..4)).unwrap(), &lb.i(0).unwrap());
    assert!(d < 1e-5, "right-padded row differs by {d}");
}

#[test]
fn kv_cache_steps_match_full_forward() {
    cache_steps_match_full_forward(&random_model(&spec(12)), 1e-5);
}

/// A 4-token prefill, then one token at a time, then a 2-token chunk, each step's logits equal to
/// the full forward's at the same positions (within `tol`).
pub fn cache_steps_match_full_forward(m: &crate::model::llama::Llama, tol: f32) {
    let seq: Vec<u32> = vec![1, 90, 14, 230, 7, 7, 150, 42, 99, 3];
    let full = m.forward(&ids(&[&seq]), &ones(seq.len())).unwrap();
    let mut cache = m.new_cache(1).unwrap();
    assert_eq!(cache.len(), 0);
    let parts = std::iter::once(0..4)
        .chain((4..8).map(|i| i..i + 1))
        .chain(std::iter::once(8..10));
    for r in parts {
        let step = m
            .forward_step(&ids(&[&seq[r.clone()]]), &ones(r.end), &mut cache)
            .unwrap();
        let d = max_abs_diff(&step.i(0).unwrap(), &full.i((0, r.clone())).unwrap());
        assert!(d < tol, "positions {r:?} differ by {d}");
    }
    assert_eq!(cache.len(), seq.len());
}

#[test]
fn batched_greedy_equals_one_by_one() {
    let m = random_model(&spec(13));
    let prompts = vec![vec![1u32, 50, 60, 70, 80], vec![1, 9], vec![1, 200, 100]];
    let batched = greedy(&m, &prompts, 6, &[], 2).unwrap();
    for (p, want) in prompts.iter().zip(&batched) {
        let alone = greedy(&m, std::slice::from_ref(p), 6, &[], 2).unwrap();
        assert_eq!(&alone[0], want);
        assert_eq!(want.len(), 6);
    }
    // greedy's first token is the argmax of the full forward's last row
    let p = &prompts[0];
    let full = m.forward(&ids(&[p]), &ones(p.len())).unwrap();
    let first: u32 = full
        .i((0, p.len() - 1))
        .unwrap()
        .argmax(0)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(batched[0][0], first);
}

#[test]
fn mask_length_mismatch_is_an_error() {
    let m = random_model(&spec(14));
    let err = m.forward(&ids(&[[1u32, 2, 3]]), &ones(4)).unwrap_err();
    assert!(err.to_string().contains("attention mask"), "{err}");
}

#[test]
fn reordered_cache_and_last_logits_match_full_forward() {
    let m = random_model(&spec(14));
    let (a, b): (Vec<u32>, Vec<u32>) = (vec![1, 90, 14, 230, 7], vec![5, 66, 123]);
    // Two left-padded prompts; keep only the last position's logits.
    let prompt = ids(&[a.clone(), [vec![2; 2], b.clone()].concat()]);
    let pmask = [vec![1u32; 5], vec![0, 0, 1, 1, 1]];
    let mask_of = |rows: &[Vec<u32>]| {
        let flat: Vec<u32> = rows.concat();
        Tensor::from_vec(flat, (rows.len(), rows[0].len()), &Device::Cpu).unwrap()
    };
    let mut cache = m.new_cache(2).unwrap();
    let last = m
        .forward_step_last(&prompt, &mask_of(&pmask), &mut cache, 1)
        .unwrap();
    assert_eq!(last.dims(), &[2, 1, 259]);
    // Rows become [b, a, b], then each gets two more tokens (the middle row only one, right-padded).
    assert!(m.reorder_cache(&mut cache, &[1, 0, 1]).unwrap());
    assert!(m.reorder_cache(&mut cache, &[5]).is_err());
    let more = [vec![40u32, 41], vec![42, 2], vec![43, 44]];
    let mask = mask_of(&[
        [pmask[1].clone(), vec![1, 1]].concat(),
        [pmask[0].clone(), vec![1, 0]].concat(),
        [pmask[1].clone(), vec![1, 1]].concat(),
    ]);
    let step = m.forward_step(&ids(&more), &mask, &mut cache).unwrap();
    let alone = |seq: &[u32]| m.forward(&ids(&[seq]), &ones(seq.len())).unwrap();
    let d = max_abs_diff(&last.i((0, 0)).unwrap(), &alone(&a).i((0, 4)).unwrap());
    assert!(d < 1e-5, "last logits of row 0 differ by {d}");
    let d = max_abs_diff(&last.i((1, 0)).unwrap(), &alone(&b).i((0, 2)).unwrap());
    assert!(d < 1e-5, "last logits of row 1 differ by {d}");
    for (row, (base, extra)) in [(&b, &more[0][..]), (&a, &more[1][..1]), (&b, &more[2][..])]
        .into_iter()
        .enumerate()
    {
        let full = alone(&[base.as_slice(), extra].concat());
        let n = base.len();
        let d = max_abs_diff(
            &step.i((row, ..extra.len())).unwrap(),
            &full.i((0, n..n + extra.len())).unwrap(),
        );
        assert!(d < 1e-5, "reordered row {row} differs by {d}");
    }
}
