//! `Llama::branch_logits` (the packed prefix-branch forward) against the trait's reference
//! implementation, `lm::branch_logits_by_forward` (a right-padded full forward per branch): the
//! same rows within f32 rounding, on a GQA model, with branches of length 0, 1 and more.

use candle_core::{DType, Device, Tensor};

use super::{random_model, spec};
use crate::lm::{Branches, CausalLm, branch_logits_by_forward};
use crate::model::Llama;
use crate::model::random::random_tensors;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

const P1: [u32; 5] = [5, 9, 17, 3, 40];
const P2: [u32; 1] = [77];
const P3: [u32; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];
const B1: [&[u32]; 4] = [&[11, 12, 13], &[14], &[], &[15, 16, 17, 18, 19, 20]];
const B2: [&[u32]; 1] = [&[21, 22, 23, 24]];
const B3: [&[u32]; 2] = [&[30, 31], &[32, 33]];

fn segments() -> Vec<Branches<'static>> {
    vec![
        Branches {
            prefix: &P1,
            branches: &B1,
        },
        Branches {
            prefix: &P2,
            branches: &B2,
        },
        Branches {
            prefix: &P3,
            branches: &B3,
        },
    ]
}

#[test]
fn packed_branch_logits_equal_the_padded_forward() {
    let model = random_model(&spec(5));
    let segs = segments();
    let got = model.branch_logits(&segs).unwrap();
    let want = branch_logits_by_forward(&model, &segs).unwrap();
    // rows: 1 + (2 + 0 + 0 + 5), 1 + 3, 1 + (1 + 1)
    assert_eq!(got.dims(), [8 + 4 + 3, model.vocab_size()]);
    assert_eq!(got.dims(), want.dims());
    let diff = max_abs_diff(&got, &want);
    assert!(diff < 1e-4, "max |packed - padded| = {diff}");
    // The rows differ from each other by far more than that, so a row from the wrong path
    // (another branch's keys, a wrong position) would show.
    let first = want.get(0).unwrap();
    let spread = max_abs_diff(&want.get(3).unwrap(), &first);
    assert!(spread > 0.1, "rows too alike: {spread}");
}

#[test]
fn a_segment_scores_the_same_alone_and_in_a_batch() {
    let model = random_model(&spec(6));
    let segs = segments();
    let all = model.branch_logits(&segs).unwrap();
    let alone = model.branch_logits(&segs[1..2]).unwrap();
    let diff = max_abs_diff(&all.narrow(0, 8, 4).unwrap(), &alone);
    assert!(diff < 1e-5, "segment 1 alone vs batched: {diff}");
}

#[test]
fn packed_branch_logits_in_bf16_follow_the_padded_forward() {
    // bf16 weights take the composed (non-fused) attention path.
    let (cfg, w) = random_tensors(&spec(7), &Device::Cpu).unwrap();
    let model = Llama::from_tensors(cfg, w, DType::BF16).unwrap();
    let segs = segments();
    let got = model.branch_logits(&segs).unwrap();
    let want = branch_logits_by_forward(&model, &segs).unwrap();
    assert_eq!(got.dtype(), DType::F32);
    let diff = max_abs_diff(&got, &want);
    assert!(diff < 0.05, "bf16 max |packed - padded| = {diff}");
}

#[test]
fn an_empty_prefix_is_an_error() {
    let model = random_model(&spec(5));
    let b: [&[u32]; 1] = [&[1, 2]];
    let segs = [Branches {
        prefix: &[],
        branches: &b,
    }];
    assert!(model.branch_logits(&segs).is_err());
    assert!(branch_logits_by_forward(&model, &segs).is_err());
    let none = model.branch_logits(&[]).unwrap();
    assert_eq!(none.dims(), [0, model.vocab_size()]);
}
