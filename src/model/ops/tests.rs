//! The fused ops against references: in f32, forward values and autograd input gradients equal
//! those of the same formula composed from candle ops (whose gradients `model::tests::grad` checks
//! by finite differences); the masked softmax's f64 gradient matches central finite differences.

use candle_core::{D, DType, Device, Tensor, Var};

use crate::cpu::{fused, fused_attn};

fn rand(shape: &[usize], seed: u64) -> Tensor {
    crate::adapter::init::uniform_tensor(shape, 2.0, seed, DType::F32, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Forward values and d(sum(f(x) * r))/dx of `ours` and `reference` agree within `tol`.
fn same(
    x: &Tensor,
    ours: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    reference: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    tol: f32,
) {
    let x = Var::from_tensor(x).unwrap();
    let (a, b) = (
        ours(x.as_tensor()).unwrap(),
        reference(x.as_tensor()).unwrap(),
    );
    assert_eq!(a.dims(), b.dims());
    let d = max_diff(&a, &b);
    assert!(d < tol, "forward differs by {d}");
    let r = rand(a.dims(), 99);
    let ga = (a * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (b * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let (ga, gb) = (
        ga.get(x.as_tensor()).expect("no gradient (fused)"),
        gb.get(x.as_tensor()).expect("no gradient (reference)"),
    );
    let scale: f32 = gb.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    assert!(scale > 1e-3, "reference gradient is ~0");
    let d = max_diff(ga, gb);
    assert!(
        d < tol * scale.max(1.0),
        "gradient differs by {d} (scale {scale})"
    );
}

#[test]
fn rms_norm_matches_the_composed_formula() {
    let w = rand(&[48], 1);
    let eps = 1e-5;
    let reference = |x: &Tensor| {
        let inv = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
        x.broadcast_mul(&inv)?.broadcast_mul(&w)
    };
    same(
        &rand(&[3, 5, 48], 2),
        |x| fused::rms_norm(x, &w, eps),
        reference,
        2e-5,
    );
}

#[test]
fn swiglu_matches_the_composed_formula_for_both_inputs() {
    let up = rand(&[7, 33], 3);
    let gate = rand(&[7, 33], 4);
    same(
        &rand(&[7, 33], 5),
        |g| fused::swiglu(g, &up),
        |g| g.silu()?.mul(&up),
        2e-5,
    );
    same(
        &rand(&[7, 33], 6),
        |u| fused::swiglu(&gate, u),
        |u| gate.silu()?.mul(u),
        2e-5,
    );
}

/// A causal mask with padding on the left (`left`) or right of row 1, as `rope::Positions`
/// builds it. Left padding leaves the first queries of row 1 with no visible key.
fn bias(b: usize, t: usize, left: bool) -> Tensor {
    let mut v = Vec::new();
    for bi in 0..b {
        for q in 0..t {
            for k in 0..t {
                let pad = if left { k < 2 } else { k + 1 >= t };
                let ok = k <= q && !(bi == 1 && pad);
                v.push(if ok { 0.0 } else { crate::model::rope::MASKED });
            }
        }
    }
    Tensor::from_vec(v, (b, t, t), &Device::Cpu).unwrap()
}

#[test]
fn masked_softmax_matches_the_composed_formula() {
    let (b, h, t) = (2, 3, 6);
    let bias = bias(b, t, true);
    let scale = 0.35;
    let reference = |s: &Tensor| {
        let z = (s * scale)?.broadcast_add(&bias.reshape((b, 1, t, t))?)?;
        super::softmax_last_dim(&z)
    };
    let ours = |s: &Tensor| fused_attn::masked_softmax(s, &bias, scale);
    same(&rand(&[b, h, t, t], 7), ours, reference, 2e-6);
}

#[test]
fn masked_softmax_gradient_matches_finite_differences() {
    let dev = Device::Cpu;
    let (b, h, t) = (2, 2, 4);
    // Right padding: every query sees a key. (A query that sees none gets the uniform softmax's
    // gradient, which finite differences cannot see: s * scale vanishes next to the -1e30 mask.)
    let bias = bias(b, t, false).to_dtype(DType::F64).unwrap();
    let scale = 0.7;
    let x = Tensor::randn(0f64, 1.0, (b, h, t, t), &dev).unwrap();
    let r = Tensor::randn(0f64, 1.0, (b, h, t, t), &dev).unwrap();
    let loss = |x: &Tensor| -> f64 {
        let y = fused_attn::masked_softmax(x, &bias, scale).unwrap();
        (y * &r).unwrap().sum_all().unwrap().to_scalar().unwrap()
    };
    let xv = Var::from_tensor(&x).unwrap();
    let y = fused_attn::masked_softmax(xv.as_tensor(), &bias, scale).unwrap();
    let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g: Vec<f64> = grads
        .get(xv.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let base: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
    let eps = 1e-5;
    for i in 0..base.len() {
        let at = |delta: f64| {
            let mut p = base.clone();
            p[i] += delta;
            loss(&Tensor::from_vec(p, (b, h, t, t), &dev).unwrap())
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps);
        assert!(
            (fd - g[i]).abs() < 1e-7 * (1.0 + fd.abs()),
            "coordinate {i}: {} vs {fd}",
            g[i]
        );
    }
    assert!(g.iter().any(|v| v.abs() > 1e-6));
}

#[test]
fn rope_on_a_transposed_view_matches_the_composed_formula() {
    let (b, h, t, d) = (2, 3, 5, 8);
    let ang = rand(&[b, 1, t, d / 2], 8);
    let cos = Tensor::cat(&[&ang.cos().unwrap(), &ang.cos().unwrap()], 3).unwrap();
    let sin = ang.sin().unwrap();
    let sin_signed = Tensor::cat(&[&sin.neg().unwrap(), &sin], 3).unwrap();
    let reference = |x: &Tensor| {
        let x1 = x.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
        let swapped = Tensor::cat(&[&x2, &x1], D::Minus1)?;
        x.broadcast_mul(&cos)? + swapped.broadcast_mul(&sin_signed)?
    };
    // [b, t, h, d] transposed to [b, h, t, d], as attention produces it
    let view = |x: &Tensor| x.transpose(1, 2);
    same(
        &rand(&[b, t, h, d], 9),
        |x| fused_attn::rope(&view(x)?, &cos, &sin_signed),
        |x| reference(&view(x)?),
        1e-6,
    );
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let x = rand(&[64, 96], 10);
    let w = rand(&[96], 11);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let three = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let a = one.install(|| fused::rms_norm(&x, &w, 1e-6).unwrap());
    let b = three.install(|| fused::rms_norm(&x, &w, 1e-6).unwrap());
    assert_eq!(max_diff(&a, &b), 0.0);
}

/// The composed reference of `cached_attention`: per query head the scores `q k^T` against its
/// KV head, `softmax(scale s + bias)` (candle ops), times `v`, laid out `[b, t, h * d]`.
fn composed_attention(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor, scale: f64) -> Tensor {
    let (b, h, t, d) = q.dims4().unwrap();
    let kvh = k.dim(1).unwrap();
    let rep = h / kvh;
    let mut heads = Vec::new();
    for hi in 0..h {
        let qh = q.narrow(1, hi, 1).unwrap();
        let kh = k.narrow(1, hi / rep, 1).unwrap();
        let vh = v.narrow(1, hi / rep, 1).unwrap();
        let s = (qh.matmul(&kh.t().unwrap()).unwrap() * scale).unwrap();
        let p = super::softmax_last_dim(&s.broadcast_add(bias).unwrap()).unwrap();
        heads.push(p.matmul(&vh).unwrap()); // [b, 1, t, d]
    }
    Tensor::cat(&heads, 1)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((b, t, h * d))
        .unwrap()
}

// Reference: the composed formula above (candle matmul + softmax), GQA with 2 query heads per
// KV head, d = 12 (one 8-lane chunk and a tail), a padded row and causal masking over a cache.
#[test]
fn cached_attention_matches_the_composed_formula_and_both_builds_agree() {
    let (b, h, kvh, t, tk, d) = (2, 4, 2, 3, 7, 12);
    let q = rand(&[b, h, t, d], 21);
    let k = rand(&[b, kvh, tk, d], 22);
    let v = rand(&[b, kvh, tk, d], 23);
    let masked = crate::model::rope::MASKED;
    // row 0: two left-padding positions, then causal over the 4 cached + 3 new positions;
    // row 1: no padding, causal.
    let mut bias = Vec::new();
    for bi in 0..b {
        for ti in 0..t {
            for j in 0..tk {
                let visible = j <= tk - t + ti && !(bi == 0 && j < 2);
                bias.push(if visible { 0.0 } else { masked });
            }
        }
    }
    let bias = Tensor::from_vec(bias, (b, 1, t, tk), &Device::Cpu).unwrap();
    let scale = 1.0 / (d as f64).sqrt();
    let ours = super::cached_attention(&q, &k, &v, &bias, scale).unwrap();
    let want = composed_attention(&q, &k, &v, &bias, scale);
    assert_eq!(ours.dims(), &[b, t, h * d]);
    let diff = max_diff(&ours, &want);
    assert!(diff < 1e-5, "cached attention differs by {diff}");

    // the AVX2 build and the baseline build of the row kernel give identical bits
    let (qv, kv, vv) = (
        q.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        k.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    );
    let bv = bias.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (mut p, mut y0, mut y1) = (Vec::new(), vec![0f32; d], vec![0f32; d]);
    let row = (&qv[..d], &kv[..tk * d], &vv[..tk * d]);
    fused_attn::attend_row(false, row, &bv[..tk], scale as f32, &mut p, &mut y0);
    if crate::cpu::has_avx2() {
        fused_attn::attend_row(true, row, &bv[..tk], scale as f32, &mut p, &mut y1);
        assert_eq!(y0, y1);
    }
    let first: Vec<f32> = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap()[..d].to_vec();
    assert_eq!(first, y0);
}

// The AVX2 build of the f32 SwiGLU rows equals the baseline build bit for bit (no FMA
// contraction in Rust), including a tail shorter than a vector.
#[test]
fn swiglu_avx2_build_is_bit_identical() {
    use crate::cpu::fused::Real;
    let g: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.61).collect();
    let u: Vec<f32> = (0..37).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3).collect();
    let mut base = vec![0f32; 37];
    fused::swiglu_chunk(&mut base, &g, &u);
    let mut fast = vec![0f32; 37];
    f32::swiglu_rows(crate::cpu::has_avx2(), &mut fast, &g, &u);
    assert_eq!(base, fast);
    // silu(g) * u at a hand-checkable point: g = 0 gives 0, and g = -18 * 0.61 is tiny
    assert_eq!(base[18], 0.0);
    let want = (-10.98f64) / (1.0 + 10.98f64.exp()) * (-5.0 * 0.3);
    assert!(
        (f64::from(base[0]) - want).abs() < 1e-6,
        "{} vs {want}",
        base[0]
    );
}
