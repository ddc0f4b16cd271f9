//! Finite-difference gradient checks in f64 for A, B and the DoRA magnitude.
//! Reference: central differences `(L(p + e) - L(p - e)) / 2e` of the same loss, e = 1e-6.
//! DoRA's norm n is detached (PEFT, DoRA paper section 4.3), so its differences are taken with n
//! held at its value (`forward_with_norm`); the autograd gradient comes from the real forward.

use candle_core::{DType, Device, Module, Tensor, Var};

use super::fixtures::rand;
use crate::adapter::dora::Dora;
use crate::adapter::dropout::Dropout;
use crate::adapter::lora::Lora;
use crate::adapter::lowrank::LowRank;
use crate::adapter::{AdapterSpec, Linear, LinearAdapter, Method, ScalingRule};

const EPS: f64 = 1e-6;

/// `L = sum(y * R) + 0.5 sum(y^2)`: non-linear in y so second-order mistakes show.
fn loss(y: &Tensor, r: &Tensor) -> Tensor {
    let lin = (y * r).unwrap().sum_all().unwrap();
    let quad = y
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .affine(0.5, 0.0)
        .unwrap();
    (lin + quad).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_scalar::<f64>().unwrap()
}

/// Compare autograd and central differences for every element of `var`.
fn check(var: &Var, analytic: &Tensor, f: &dyn Fn() -> f64, what: &str) {
    let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    let grad: Vec<f64> = analytic.flatten_all().unwrap().to_vec1().unwrap();
    let mut nonzero = 0;
    for i in 0..base.len() {
        let mut p = base.clone();
        p[i] += EPS;
        var.set(&Tensor::from_vec(p.clone(), var.dims(), &Device::Cpu).unwrap())
            .unwrap();
        let up = f();
        p[i] -= 2.0 * EPS;
        var.set(&Tensor::from_vec(p, var.dims(), &Device::Cpu).unwrap())
            .unwrap();
        let down = f();
        var.set(&Tensor::from_vec(base.clone(), var.dims(), &Device::Cpu).unwrap())
            .unwrap();
        let fd = (up - down) / (2.0 * EPS);
        let tol = 1e-6 * (1.0 + fd.abs());
        assert!(
            (fd - grad[i]).abs() < tol,
            "{what}[{i}]: autograd {} vs finite difference {fd}",
            grad[i]
        );
        if grad[i].abs() > 1e-8 {
            nonzero += 1;
        }
    }
    assert!(
        nonzero > 0,
        "{what}: all gradients zero, the check would be vacuous"
    );
}

fn low_rank(rule: ScalingRule, method: Method) -> LowRank {
    let spec = AdapterSpec {
        method,
        rank: 3,
        alpha: 7.0,
        rule,
    };
    let a = rand(&[3, 5], 1, DType::F64);
    let b = rand(&[6, 3], 2, DType::F64).affine(0.5, 0.0).unwrap();
    LowRank::new(spec, &a, &b, Dropout::new(0.0, 0)).unwrap()
}

#[test]
fn lora_gradients_match_finite_differences() {
    for rule in [ScalingRule::Lora, ScalingRule::Rora] {
        let w = rand(&[6, 5], 3, DType::F64);
        let bias = rand(&[6], 4, DType::F64);
        let x = rand(&[2, 4, 5], 5, DType::F64);
        let r = rand(&[2, 4, 6], 6, DType::F64);
        let mut lin = Linear::new(w, Some(bias));
        let low = low_rank(rule, Method::Lora);
        let (a, b) = (low.a().clone(), low.b().clone());
        lin.set_adapter(Some(Box::new(Lora::new(low)))).unwrap();
        let f = || scalar(&loss(&lin.forward(&x).unwrap(), &r));
        let grads = loss(&lin.forward(&x).unwrap(), &r).backward().unwrap();
        check(&a, grads.get(a.as_tensor()).unwrap(), &f, "lora_A");
        check(&b, grads.get(b.as_tensor()).unwrap(), &f, "lora_B");
        assert!(
            grads.get(lin.weight()).is_none(),
            "the frozen weight must get no gradient"
        );
    }
}

#[test]
fn dora_gradients_match_finite_differences_with_the_norm_detached() {
    for rule in [ScalingRule::Lora, ScalingRule::Rora] {
        let w = rand(&[6, 5], 3, DType::F64);
        let bias = rand(&[6], 4, DType::F64);
        let x = rand(&[2, 4, 5], 5, DType::F64);
        let r = rand(&[2, 4, 6], 6, DType::F64);
        let lin = Linear::new(w.clone(), Some(bias.clone()));
        let base = lin.forward_base(&x).unwrap();
        let dora = Dora::init(low_rank(rule, Method::Dora), &w).unwrap();
        // Move the magnitude off its initial value so m/n != 1.
        let m = dora.magnitude().clone();
        m.set(&(m.as_tensor() * 1.3).unwrap()).unwrap();
        let (a, b) = (dora.low_rank().a().clone(), dora.low_rank().b().clone());

        let y = dora.forward(&x, &base, &w, Some(&bias)).unwrap();
        let grads = loss(&y, &r).backward().unwrap();
        let norm = dora.weight_norm(&w).unwrap();
        let f = || {
            scalar(&loss(
                &dora
                    .forward_with_norm(&x, &base, &w, Some(&bias), &norm)
                    .unwrap(),
                &r,
            ))
        };
        check(&a, grads.get(a.as_tensor()).unwrap(), &f, "dora lora_A");
        check(&b, grads.get(b.as_tensor()).unwrap(), &f, "dora lora_B");
        check(
            &m,
            grads.get(m.as_tensor()).unwrap(),
            &f,
            "lora_magnitude_vector",
        );
        assert!(grads.get(&w).is_none());
    }
}

// The factorised norm equals the direct ||W + s B A||_row (PEFT's get_weight_norm).
#[test]
fn dora_norm_equals_the_direct_row_norm() {
    let w = rand(&[6, 5], 3, DType::F64);
    let dora = Dora::init(low_rank(ScalingRule::Rora, Method::Dora), &w).unwrap();
    let direct = (&w + dora.low_rank().delta_weight().unwrap())
        .unwrap()
        .sqr()
        .unwrap()
        .sum(1)
        .unwrap()
        .sqrt()
        .unwrap();
    let ours = dora.weight_norm(&w).unwrap();
    assert!(super::fixtures::max_abs_diff(&direct, &ours) < 1e-12);
}

// Series before/after and parallel bottleneck adapters, fixed and learned scale: every matrix and
// the learned scale against central differences (the frozen weight gets no gradient).
#[test]
fn bottleneck_gradients_match_finite_differences() {
    use crate::adapter::bottleneck::{Activation, Bottleneck, Placement};
    // `up_proj`-like [6, 5]: before (5 -> 5), after (6 -> 6), parallel (5 -> 6)
    for (placement, method) in [
        (Placement::Before, Method::Series),
        (Placement::After, Method::Series),
        (Placement::Parallel, Method::Parallel),
    ] {
        for rule in [ScalingRule::Fixed(0.7), ScalingRule::Learned(1.3)] {
            let w = rand(&[6, 5], 3, DType::F64);
            let bias = rand(&[6], 4, DType::F64);
            let x = rand(&[2, 4, 5], 5, DType::F64);
            let r = rand(&[2, 4, 6], 6, DType::F64);
            let spec = AdapterSpec {
                method,
                rank: 3,
                alpha: 0.7,
                rule,
            };
            let (d_in, d_out) = placement.widths((6, 5));
            let down = rand(&[3, d_in], 7, DType::F64);
            let up = rand(&[d_out, 3], 8, DType::F64);
            let bn = Bottleneck::new(
                spec,
                placement,
                Activation::Tanh,
                (6, 5),
                &down,
                &up,
                None,
                Dropout::new(0.0, 0),
            )
            .unwrap();
            let vars = bn.vars();
            let mut lin = Linear::new(w, Some(bias));
            lin.set_adapter(Some(Box::new(bn))).unwrap();
            let f = || scalar(&loss(&lin.forward(&x).unwrap(), &r));
            let grads = loss(&lin.forward(&x).unwrap(), &r).backward().unwrap();
            for (name, var) in &vars {
                check(
                    var,
                    grads.get(var.as_tensor()).unwrap(),
                    &f,
                    &format!("{placement:?} {name}"),
                );
            }
            assert_eq!(vars.len(), 2 + usize::from(rule.name() == "learned"));
            assert!(grads.get(lin.weight()).is_none());
        }
    }
}
