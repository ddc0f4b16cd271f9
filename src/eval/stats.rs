//! Uncertainty statistics for evaluation scores: standard errors, Student-t confidence intervals
//! over seeds, and a seeded paired bootstrap over the items of several tasks.
//!
//! Sources of the formulas:
//!
//! - [`mean_stderr`] is lm-evaluation-harness's `mean_stderr` (`lm_eval/api/metrics.py`):
//!   `sample_stddev(arr) / math.sqrt(len(arr))` with
//!   `sample_stddev = sqrt(sum((x - mu)^2) / (len - 1))` (ddof = 1). For 0/1 scores it equals
//!   `sqrt(p (1 - p) / (n - 1))`.
//! - [`student_t_quantile`] inverts the Student-t CDF
//!   `P(T <= t) = 1 - I_{v / (v + t^2)}(v / 2, 1 / 2) / 2` for `t >= 0` (Abramowitz & Stegun
//!   26.7.1 with 26.5.27), where the regularized incomplete beta function `I_x(a, b)` is evaluated
//!   by its continued fraction with the modified Lentz method (Numerical Recipes, 2nd ed., §6.4,
//!   `betai`/`betacf`) and `ln Γ` by the Lanczos approximation (g = 7, 9 terms). The CDF is solved
//!   by Newton's method safeguarded by bisection. For very large `v` (above [`LARGE_DF`]) it uses
//!   the Cornish-Fisher expansion around the normal quantile (Abramowitz & Stegun 26.7.5) with the
//!   normal quantile from P. J. Acklam's rational approximation.
//! - [`t_interval`] is the textbook interval `mean ± t_{(1 + level) / 2, n - 1} · s / sqrt(n)`.
//! - [`quantile`] is numpy's default `method="linear"` (Hyndman & Fan type 7).
//! - [`paired_bootstrap`] is the percentile bootstrap (Efron & Tibshirani, *An Introduction to
//!   the Bootstrap*, ch. 13) of the difference between two runs scored on the same items,
//!   resampling items with replacement within each task (stratified by task), for each task and
//!   for the unweighted (macro) average over tasks.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Arithmetic mean; `NaN` for an empty slice.
fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation with `ddof = 1`; `None` for fewer than two values.
fn sample_stddev(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let mu = mean(xs);
    let ss: f64 = xs.iter().map(|x| (x - mu) * (x - mu)).sum();
    Some((ss / (xs.len() - 1) as f64).sqrt())
}

/// Standard error of the mean as lm-evaluation-harness computes it: the sample standard
/// deviation with `ddof = 1` divided by `sqrt(n)`. For 0/1 scores with accuracy `p` this is
/// `sqrt(p (1 - p) / (n - 1))`. `None` for fewer than two values.
pub fn mean_stderr(xs: &[f64]) -> Option<f64> {
    sample_stddev(xs).map(|s| s / (xs.len() as f64).sqrt())
}

/// `ln Γ(x)` for `x > 0` by the Lanczos approximation (g = 7, 9 coefficients, relative error
/// around 1e-15), with the reflection formula below 1/2.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Γ(x) Γ(1 - x) = π / sin(π x)
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin().abs()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut acc = COEF[0];
    for (i, c) in COEF.iter().enumerate().skip(1) {
        acc += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + acc.ln()
}

/// Continued fraction of the incomplete beta function (Numerical Recipes `betacf`, modified
/// Lentz). Returns the last approximant if it has not converged after `MAX_ITER` terms.
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const MAX_ITER: usize = 10_000;
    const EPS: f64 = 1e-15;
    const FPMIN: f64 = 1e-300;
    let floor = |v: f64| if v.abs() < FPMIN { FPMIN } else { v };
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let mut c = 1.0;
    let mut d = 1.0 / floor(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=MAX_ITER {
        let m = m as f64;
        let m2 = 2.0 * m;
        // Even step.
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / floor(1.0 + aa * d);
        c = floor(1.0 + aa / c);
        h *= d * c;
        // Odd step.
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / floor(1.0 + aa * d);
        c = floor(1.0 + aa / c);
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// Regularized incomplete beta function `I_x(a, b)`, given both `x` and `y = 1 - x` (so that
/// callers can pass an accurately computed complement).
fn inc_beta(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * y.ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, y) / b
    }
}

/// Upper tail `P(T > t)` of Student's t with `df` degrees of freedom, for `t >= 0`.
fn t_upper_tail(t: f64, df: f64) -> f64 {
    let t2 = t * t;
    let x = df / (df + t2);
    let y = t2 / (df + t2);
    0.5 * inc_beta(0.5 * df, 0.5, x, y)
}

/// Density of Student's t with `df` degrees of freedom.
fn t_pdf(t: f64, df: f64) -> f64 {
    let ln = ln_gamma(0.5 * (df + 1.0))
        - ln_gamma(0.5 * df)
        - 0.5 * (df * std::f64::consts::PI).ln()
        - 0.5 * (df + 1.0) * (t * t / df).ln_1p();
    ln.exp()
}

/// Degrees of freedom above which [`student_t_quantile`] switches from inverting the exact CDF to
/// the Cornish-Fisher expansion: its truncation error there is negligible, and the result is as
/// accurate as the normal quantile approximation (about 1e-9 relative).
pub const LARGE_DF: f64 = 1e5;

/// Standard normal quantile by Acklam's rational approximation (relative error below 1.2e-9),
/// for `0 < p < 1`.
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.02425;
    let tail = |q: f64| {
        let q = (-2.0 * q.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < P_LOW {
        tail(p)
    } else if p > 1.0 - P_LOW {
        -tail(1.0 - p)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Student-t quantile by the Cornish-Fisher expansion in `1 / df` (Abramowitz & Stegun 26.7.5),
/// for large `df` (exactly the normal quantile for infinite `df`).
fn t_quantile_cornish_fisher(p: f64, df: f64) -> f64 {
    let z = normal_quantile(p);
    let z2 = z * z;
    let z3 = z2 * z;
    let z5 = z3 * z2;
    let z7 = z5 * z2;
    let z9 = z7 * z2;
    let g1 = (z3 + z) / 4.0;
    let g2 = (5.0 * z5 + 16.0 * z3 + 3.0 * z) / 96.0;
    let g3 = (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / 384.0;
    let g4 = (79.0 * z9 + 776.0 * z7 + 1482.0 * z5 - 1920.0 * z3 - 945.0 * z) / 92160.0;
    let v = df;
    z + g1 / v + g2 / (v * v) + g3 / (v * v * v) + g4 / (v * v * v * v)
}

/// The `t >= 0` with `P(T > t) = q`, for `0 < q < 1/2`, by Newton's method on the exact upper
/// tail, safeguarded by a bisection bracket.
fn t_upper_tail_inverse(q: f64, df: f64) -> f64 {
    // Bracket [lo, hi] with tail(lo) >= q > tail(hi).
    let mut lo = 0.0;
    let mut hi = 1.0;
    while t_upper_tail(hi, df) >= q {
        lo = hi;
        hi *= 2.0;
        if !hi.is_finite() {
            return f64::INFINITY;
        }
    }
    let mut t = 0.5 * (lo + hi);
    for _ in 0..200 {
        let f = t_upper_tail(t, df) - q;
        if f == 0.0 {
            return t;
        }
        if f > 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        let pdf = t_pdf(t, df);
        let newton = t + f / pdf;
        let next = if pdf > 0.0 && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - t).abs() <= 1e-14 * t.max(1e-300) || hi - lo <= 1e-15 * hi {
            return next;
        }
        t = next;
    }
    t
}

/// Quantile function of Student's t distribution with `df > 0` degrees of freedom (`df` may be
/// fractional, and `f64::INFINITY` gives the standard normal): the `t` with `P(T <= t) = p`,
/// accurate to 1e-6 or better. Exactly antisymmetric: `quantile(p) == -quantile(1 - p)`.
///
/// Returns `-inf` for `p == 0`, `+inf` for `p == 1`, and `NaN` for `p` outside `[0, 1]`, a `NaN`
/// argument, or `df <= 0`.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if p.is_nan() || df.is_nan() || !(0.0..=1.0).contains(&p) || df <= 0.0 {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    // Work on the upper tail probability q < 1/2 (for p > 1/2, 1 - p is exact).
    let (q, sign) = if p > 0.5 { (1.0 - p, 1.0) } else { (p, -1.0) };
    let t = if df > LARGE_DF {
        t_quantile_cornish_fisher(1.0 - q, df)
    } else {
        t_upper_tail_inverse(q, df)
    };
    sign * t
}

/// A point estimate with a confidence interval `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The point estimate.
    pub estimate: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
}

impl Interval {
    /// Whether zero lies strictly outside the interval (`lo > 0 || hi < 0`): the difference it
    /// describes is significant at the interval's level.
    pub fn excludes_zero(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }
}

/// Student-t confidence interval for the mean of `xs` (e.g. one score per seed):
/// `mean ± t_{(1 + level) / 2, n - 1} · s / sqrt(n)` with `s` the sample standard deviation
/// (`ddof = 1`). `None` for fewer than two values or a `level` outside `(0, 1)`.
pub fn t_interval(xs: &[f64], level: f64) -> Option<Interval> {
    if !(level > 0.0 && level < 1.0) {
        return None;
    }
    let stderr = mean_stderr(xs)?;
    let estimate = mean(xs);
    let half = student_t_quantile(0.5 * (1.0 + level), (xs.len() - 1) as f64) * stderr;
    Some(Interval {
        estimate,
        lo: estimate - half,
        hi: estimate + half,
    })
}

/// Quantile `q` of already sorted (ascending) values by linear interpolation between the closest
/// ranks, numpy's default (`method="linear"`, Hyndman & Fan type 7): with `h = (n - 1) q`,
/// `x[⌊h⌋] + (h - ⌊h⌋) (x[⌊h⌋ + 1] - x[⌊h⌋])`. `q` is clamped to `[0, 1]`; returns `NaN` for an
/// empty slice or a `NaN` `q`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    let n = sorted.len();
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let i = (h.floor() as usize).min(n - 1);
    if i + 1 >= n {
        return sorted[n - 1];
    }
    let frac = h - i as f64;
    sorted[i] + frac * (sorted[i + 1] - sorted[i])
}

/// Per-item scores of two runs, A and B, on the same items of one task, in the same order
/// (typically 0/1 correctness). Both slices must be non-empty and of equal length.
#[derive(Debug, Clone, Copy)]
pub struct PairedTask<'a> {
    /// Scores of run A.
    pub a: &'a [f64],
    /// Scores of run B, item for item aligned with `a`.
    pub b: &'a [f64],
}

/// Result of [`paired_bootstrap`]: percentile intervals of the difference A − B, per task and for
/// the unweighted mean over tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedBootstrap {
    /// Per task (in input order): estimate `mean(a) - mean(b)` and its percentile interval.
    pub tasks: Vec<Interval>,
    /// The macro average over tasks of the per-task differences, and its percentile interval.
    pub average: Interval,
    /// Number of bootstrap resamples.
    pub resamples: usize,
    /// Seed of the `ChaCha8Rng` that drew the resamples.
    pub seed: u64,
    /// Confidence level of the intervals, e.g. 0.95.
    pub level: f64,
}

/// Checks the tasks and returns the per-item differences `d_i = a_i - b_i` of each.
fn paired_differences(tasks: &[PairedTask<'_>], resamples: usize) -> Result<Vec<Vec<f64>>, String> {
    if tasks.is_empty() {
        return Err("paired bootstrap: no tasks".to_string());
    }
    if resamples == 0 {
        return Err("paired bootstrap: the number of resamples must be at least 1".to_string());
    }
    tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            if task.a.len() != task.b.len() {
                return Err(format!(
                    "paired bootstrap: task {t}: run A has {} items but run B has {}",
                    task.a.len(),
                    task.b.len()
                ));
            }
            if task.a.is_empty() {
                return Err(format!("paired bootstrap: task {t} has no items"));
            }
            task.a
                .iter()
                .zip(task.b)
                .enumerate()
                .map(|(i, (a, b))| {
                    if a.is_finite() && b.is_finite() {
                        Ok(a - b)
                    } else {
                        Err(format!(
                            "paired bootstrap: task {t}, item {i}: non-finite score (A {a}, B {b})"
                        ))
                    }
                })
                .collect()
        })
        .collect()
}

/// Draws the resamples: returns the macro-average difference of each resample (in draw order)
/// and, if `per_task`, each task's resampled mean difference (`per_task[t][r]`).
fn resample(
    diffs: &[Vec<f64>],
    resamples: usize,
    seed: u64,
    per_task: bool,
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut averages = Vec::with_capacity(resamples);
    let mut task_means: Vec<Vec<f64>> = if per_task {
        diffs
            .iter()
            .map(|_| Vec::with_capacity(resamples))
            .collect()
    } else {
        Vec::new()
    };
    let n_tasks = diffs.len() as f64;
    for _ in 0..resamples {
        let mut total = 0.0;
        for (t, d) in diffs.iter().enumerate() {
            let n = d.len();
            let mut sum = 0.0;
            for _ in 0..n {
                sum += d[rng.random_range(0..n)];
            }
            let task_mean = sum / n as f64;
            if per_task {
                task_means[t].push(task_mean);
            }
            total += task_mean;
        }
        averages.push(total / n_tasks);
    }
    (averages, task_means)
}

/// The bootstrap distribution that [`paired_bootstrap`] builds on: for each of `resamples`
/// resamples (in draw order, unsorted), the macro average over tasks of the resampled mean
/// difference A − B.
///
/// Each resample draws, for every task independently (stratified by task), `n_t` item indices
/// with replacement from one `ChaCha8Rng::seed_from_u64(seed)` stream, in the fixed order
/// resample → task → item. Errors (naming the task) on no tasks, zero resamples, a task whose
/// runs differ in length or have no items, or a non-finite score.
pub fn bootstrap_distribution(
    tasks: &[PairedTask<'_>],
    resamples: usize,
    seed: u64,
) -> Result<Vec<f64>, String> {
    let diffs = paired_differences(tasks, resamples)?;
    Ok(resample(&diffs, resamples, seed, false).0)
}

/// Percentile interval at `level` of the unsorted bootstrap values `values` (sorted in place).
fn percentile_interval(estimate: f64, values: &mut [f64], level: f64) -> Interval {
    values.sort_unstable_by(f64::total_cmp);
    Interval {
        estimate,
        lo: quantile(values, 0.5 * (1.0 - level)),
        hi: quantile(values, 0.5 * (1.0 + level)),
    }
}

/// Seeded paired bootstrap of the difference between runs A and B, per task and for the
/// unweighted (macro) average over tasks.
///
/// Each task's estimate is `mean(a) - mean(b)` on the original items; the average's estimate is
/// the mean of those over tasks. The resamples are those of [`bootstrap_distribution`] (same
/// seed, same draws); the intervals are percentile intervals, `lo` and `hi` being the
/// `(1 - level) / 2` and `(1 + level) / 2` [`quantile`]s of the resampled differences. Errors on
/// the inputs [`bootstrap_distribution`] rejects and on a `level` outside `(0, 1)`.
pub fn paired_bootstrap(
    tasks: &[PairedTask<'_>],
    resamples: usize,
    seed: u64,
    level: f64,
) -> Result<PairedBootstrap, String> {
    if !(level > 0.0 && level < 1.0) {
        return Err(format!(
            "paired bootstrap: the confidence level must lie in (0, 1), got {level}"
        ));
    }
    let diffs = paired_differences(tasks, resamples)?;
    let (mut averages, mut task_means) = resample(&diffs, resamples, seed, true);
    let estimates: Vec<f64> = tasks.iter().map(|t| mean(t.a) - mean(t.b)).collect();
    let task_intervals = estimates
        .iter()
        .zip(task_means.iter_mut())
        .map(|(&estimate, values)| percentile_interval(estimate, values, level))
        .collect();
    let average = percentile_interval(mean(&estimates), &mut averages, level);
    Ok(PairedBootstrap {
        tasks: task_intervals,
        average,
        resamples,
        seed,
        level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn mean_stderr_matches_hand_values() {
        assert_eq!(mean_stderr(&[]), None);
        assert_eq!(mean_stderr(&[1.0]), None);
        // p = 0.75, stderr = sqrt(0.1875 / 3) = 0.25.
        let se = mean_stderr(&[1.0, 0.0, 1.0, 1.0]).unwrap();
        assert!(close(se, 0.25, 1e-15), "{se}");
        // [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, sum of squares 32, s = sqrt(32 / 7).
        let se = mean_stderr(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert!(
            close(se, (32.0f64 / 7.0).sqrt() / 8f64.sqrt(), 1e-14),
            "{se}"
        );
    }

    #[test]
    fn mean_stderr_of_binary_scores_is_binomial() {
        for (ones, n) in [(1usize, 2usize), (3, 10), (17, 40), (99, 100), (250, 1000)] {
            let xs: Vec<f64> = (0..n).map(|i| if i < ones { 1.0 } else { 0.0 }).collect();
            let p = ones as f64 / n as f64;
            let want = (p * (1.0 - p) / (n - 1) as f64).sqrt();
            let got = mean_stderr(&xs).unwrap();
            assert!(close(got, want, 1e-12), "{ones}/{n}: {got} vs {want}");
        }
    }

    #[test]
    fn ln_gamma_matches_known_values() {
        assert!(close(ln_gamma(1.0), 0.0, 1e-14));
        assert!(close(ln_gamma(2.0), 0.0, 1e-14));
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-14
        ));
        assert!(close(ln_gamma(10.0), 362_880f64.ln(), 1e-12));
        assert!(close(ln_gamma(0.1), 2.252_712_651_734_206, 1e-13));
    }

    #[test]
    fn t_quantile_matches_tables() {
        let table = [
            (0.975, 1.0, 12.706_205),
            (0.975, 2.0, 4.302_653),
            (0.975, 4.0, 2.776_445),
            (0.975, 9.0, 2.262_157),
            (0.975, 30.0, 2.042_272),
            (0.95, 10.0, 1.812_461),
            (0.995, 5.0, 4.032_143),
            (0.9995, 3.0, 12.923_979),
            (0.75, 1.0, 1.0),
            (0.975, 120.0, 1.979_930),
            (0.975, 1e6, 1.959_966),
            (0.975, f64::INFINITY, 1.959_964),
            (0.995, f64::INFINITY, 2.575_829),
        ];
        for (p, df, want) in table {
            let got = student_t_quantile(p, df);
            assert!(close(got, want, 1e-6), "t({p}, {df}) = {got}, want {want}");
            let lower = student_t_quantile(1.0 - p, df);
            assert_eq!(lower, -got, "symmetry at ({p}, {df})");
        }
        assert_eq!(student_t_quantile(0.5, 3.0), 0.0);
        assert_eq!(student_t_quantile(0.0, 3.0), f64::NEG_INFINITY);
        assert_eq!(student_t_quantile(1.0, 3.0), f64::INFINITY);
        assert!(student_t_quantile(1.5, 3.0).is_nan());
        assert!(student_t_quantile(0.9, 0.0).is_nan());
        assert!(student_t_quantile(f64::NAN, 3.0).is_nan());
    }

    #[test]
    fn t_quantile_inverts_the_cdf() {
        for df in [0.5, 1.0, 2.5, 7.0, 50.0, 1e3, 5e4] {
            for p in [1e-8, 1e-4, 0.01, 0.2, 0.49, 0.51, 0.8, 0.99, 0.9999] {
                let t = student_t_quantile(p, df);
                let cdf = if t >= 0.0 {
                    1.0 - t_upper_tail(t, df)
                } else {
                    t_upper_tail(-t, df)
                };
                assert!(
                    close(cdf, p, 1e-12 * p.max(1e-3)),
                    "df {df}, p {p}: t {t} has cdf {cdf}"
                );
            }
        }
    }

    #[test]
    fn cornish_fisher_agrees_with_the_exact_inverse() {
        for (df, tol) in [(30.0, 1e-5), (100.0, 1e-7), (1e3, 1e-8), (LARGE_DF, 1e-8)] {
            for p in [0.9, 0.95, 0.975, 0.995, 0.9995] {
                let exact = t_upper_tail_inverse(1.0 - p, df);
                let cf = t_quantile_cornish_fisher(p, df);
                assert!(close(exact, cf, tol), "df {df}, p {p}: {exact} vs {cf}");
            }
        }
    }

    #[test]
    fn interval_excludes_zero() {
        let iv = |lo, hi| Interval {
            estimate: 0.5 * (lo + hi),
            lo,
            hi,
        };
        assert!(iv(0.1, 0.3).excludes_zero());
        assert!(iv(-0.3, -0.1).excludes_zero());
        assert!(!iv(-0.1, 0.3).excludes_zero());
        assert!(!iv(0.0, 0.3).excludes_zero());
        assert!(!iv(0.0, 0.0).excludes_zero());
    }

    #[test]
    fn t_interval_matches_hand_computation() {
        let got = t_interval(&[0.60, 0.62, 0.64], 0.95).unwrap();
        let half = 4.302_653 * 0.02 / 3f64.sqrt();
        assert!(close(got.estimate, 0.62, 1e-12));
        assert!(close(got.lo, 0.62 - half, 1e-7), "{got:?}");
        assert!(close(got.hi, 0.62 + half, 1e-7), "{got:?}");
        assert_eq!(t_interval(&[0.5], 0.95), None);
        assert_eq!(t_interval(&[], 0.95), None);
        assert_eq!(t_interval(&[0.1, 0.2], 1.0), None);
        assert_eq!(t_interval(&[0.1, 0.2], 0.0), None);
        let flat = t_interval(&[0.3, 0.3, 0.3], 0.9).unwrap();
        assert_eq!((flat.lo, flat.hi), (flat.estimate, flat.estimate));
    }

    #[test]
    fn quantile_matches_numpy_linear() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        // numpy.quantile([1, 2, 3, 4], q): h = 3 q.
        assert_eq!(quantile(&xs, 0.0), 1.0);
        assert_eq!(quantile(&xs, 1.0), 4.0);
        assert!(close(quantile(&xs, 0.5), 2.5, 1e-15));
        assert!(close(quantile(&xs, 0.25), 1.75, 1e-15));
        assert!(close(quantile(&xs, 0.9), 3.7, 1e-15));
        assert!(close(quantile(&xs, 0.025), 1.075, 1e-15));
        let ys = [0.0, 10.0, 20.0, 30.0, 40.0];
        assert!(close(quantile(&ys, 0.975), 39.0, 1e-12));
        assert!(close(quantile(&ys, 0.3), 12.0, 1e-12));
        assert_eq!(quantile(&[7.0], 0.3), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
        assert!(quantile(&xs, f64::NAN).is_nan());
        assert_eq!(quantile(&xs, 1.5), 4.0);
        assert_eq!(quantile(&xs, -0.5), 1.0);
    }

    /// Exact distribution (support point, probability) of the macro-averaged resampled mean of
    /// `d` values per task, by enumerating every equally likely resample.
    fn exact_distribution(diffs: &[Vec<f64>]) -> Vec<(f64, f64)> {
        // Distribution of each task's resampled mean.
        let per_task: Vec<Vec<f64>> = diffs
            .iter()
            .map(|d| {
                let n = d.len();
                let combos = n.pow(n as u32);
                (0..combos)
                    .map(|mut c| {
                        let mut sum = 0.0;
                        for _ in 0..n {
                            sum += d[c % n];
                            c /= n;
                        }
                        sum / n as f64
                    })
                    .collect()
            })
            .collect();
        // Cartesian product over tasks, each combination equally likely.
        let mut averages = vec![0.0];
        for means in &per_task {
            averages = averages
                .iter()
                .flat_map(|acc| means.iter().map(move |m| acc + m))
                .collect();
        }
        let k = diffs.len() as f64;
        let prob = 1.0 / averages.len() as f64;
        let mut points: Vec<f64> = averages.iter().map(|s| s / k).collect();
        points.sort_unstable_by(f64::total_cmp);
        let mut dist: Vec<(f64, f64)> = Vec::new();
        for x in points {
            match dist.last_mut() {
                Some((last, p)) if (x - *last).abs() < 1e-9 => *p += prob,
                _ => dist.push((x, prob)),
            }
        }
        dist
    }

    fn check_against_exact(tasks: &[PairedTask<'_>]) {
        let diffs: Vec<Vec<f64>> = tasks
            .iter()
            .map(|t| t.a.iter().zip(t.b).map(|(a, b)| a - b).collect())
            .collect();
        let exact = exact_distribution(&diffs);
        let exact_mean: f64 = exact.iter().map(|(x, p)| x * p).sum();
        let draws = bootstrap_distribution(tasks, 200_000, 7).unwrap();
        assert_eq!(draws.len(), 200_000);
        let empirical_mean = mean(&draws);
        assert!(
            close(empirical_mean, exact_mean, 0.003),
            "mean {empirical_mean} vs exact {exact_mean}"
        );
        let mut cdf = 0.0;
        for &(x, p) in &exact {
            cdf += p;
            let below = draws.iter().filter(|&&v| v <= x + 1e-9).count();
            let empirical = below as f64 / draws.len() as f64;
            assert!(
                close(empirical, cdf, 0.005),
                "P(diff <= {x}): {empirical} vs exact {cdf}"
            );
        }
        assert!(close(cdf, 1.0, 1e-12));
        // Every draw lies on the exact support.
        assert!(
            draws
                .iter()
                .all(|v| exact.iter().any(|(x, _)| (v - x).abs() < 1e-9))
        );
    }

    #[test]
    fn bootstrap_matches_exact_enumeration_for_one_task() {
        let (a, b) = ([1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]);
        let tasks = [PairedTask { a: &a, b: &b }];
        check_against_exact(&tasks);
    }

    #[test]
    fn bootstrap_matches_exact_enumeration_for_two_tasks() {
        let (a1, b1) = ([1.0, 0.0], [0.0, 0.0]);
        let (a2, b2) = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
        let tasks = [PairedTask { a: &a1, b: &b1 }, PairedTask { a: &a2, b: &b2 }];
        check_against_exact(&tasks);
    }

    #[test]
    fn paired_bootstrap_intervals_are_percentiles_of_the_distribution() {
        let (a1, b1) = (
            [1.0, 1.0, 0.0, 1.0, 0.0, 1.0],
            [0.0, 1.0, 0.0, 0.0, 1.0, 1.0],
        );
        let (a2, b2) = ([1.0, 0.0, 1.0], [0.0, 0.0, 1.0]);
        let tasks = [PairedTask { a: &a1, b: &b1 }, PairedTask { a: &a2, b: &b2 }];
        let res = paired_bootstrap(&tasks, 5_000, 11, 0.9).unwrap();
        let mut draws = bootstrap_distribution(&tasks, 5_000, 11).unwrap();
        draws.sort_unstable_by(f64::total_cmp);
        assert_eq!(res.average.lo, quantile(&draws, 0.05));
        assert_eq!(res.average.hi, quantile(&draws, 0.95));
        let e1 = 4.0 / 6.0 - 3.0 / 6.0;
        let e2 = 2.0 / 3.0 - 1.0 / 3.0;
        assert!(close(res.tasks[0].estimate, e1, 1e-15));
        assert!(close(res.tasks[1].estimate, e2, 1e-15));
        assert!(close(res.average.estimate, 0.5 * (e1 + e2), 1e-15));
        for iv in res.tasks.iter().chain([&res.average]) {
            assert!(iv.lo <= iv.estimate && iv.estimate <= iv.hi, "{iv:?}");
        }
        assert_eq!((res.resamples, res.seed, res.level), (5_000, 11, 0.9));
        // With one task, the task's interval is the average's.
        let single = paired_bootstrap(&tasks[..1], 3_000, 5, 0.95).unwrap();
        assert_eq!(single.tasks, vec![single.average]);
    }

    #[test]
    fn paired_bootstrap_is_deterministic_per_seed() {
        let (a, b) = (
            [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0],
            [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0],
        );
        let tasks = [PairedTask { a: &a, b: &b }];
        let first = paired_bootstrap(&tasks, 2_000, 42, 0.95).unwrap();
        let again = paired_bootstrap(&tasks, 2_000, 42, 0.95).unwrap();
        assert_eq!(first, again);
        let d1 = bootstrap_distribution(&tasks, 2_000, 42).unwrap();
        let d2 = bootstrap_distribution(&tasks, 2_000, 43).unwrap();
        assert_eq!(d1, bootstrap_distribution(&tasks, 2_000, 42).unwrap());
        assert_ne!(d1, d2);
    }

    #[test]
    fn identical_runs_give_a_zero_interval() {
        let a = [1.0, 0.0, 1.0, 1.0, 0.0];
        let c = [0.0, 0.0, 1.0];
        let tasks = [PairedTask { a: &a, b: &a }, PairedTask { a: &c, b: &c }];
        let res = paired_bootstrap(&tasks, 1_000, 1, 0.95).unwrap();
        let zero = Interval {
            estimate: 0.0,
            lo: 0.0,
            hi: 0.0,
        };
        assert_eq!(res.average, zero);
        assert_eq!(res.tasks, vec![zero, zero]);
        assert!(!res.average.excludes_zero());
    }

    #[test]
    fn a_clearly_better_run_excludes_zero() {
        let a = [1.0; 50];
        let b = [0.0; 50];
        let res = paired_bootstrap(&[PairedTask { a: &a, b: &b }], 1_000, 3, 0.95).unwrap();
        assert_eq!(res.average.estimate, 1.0);
        assert!(res.average.excludes_zero());
        assert!(res.tasks[0].excludes_zero());

        // A noisier but still clearly better run.
        let a: Vec<f64> = (0..200).map(|i| f64::from(i % 5 != 0)).collect();
        let b: Vec<f64> = (0..200).map(|i| f64::from(i % 2 == 0)).collect();
        let res = paired_bootstrap(&[PairedTask { a: &a, b: &b }], 2_000, 3, 0.95).unwrap();
        assert!(close(res.average.estimate, 0.3, 1e-12));
        assert!(res.average.excludes_zero(), "{:?}", res.average);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let a = [1.0, 0.0];
        let short = [1.0];
        let ok = PairedTask { a: &a, b: &a };

        let err = paired_bootstrap(&[], 100, 0, 0.95).unwrap_err();
        assert!(err.contains("no tasks"), "{err}");
        assert!(bootstrap_distribution(&[], 100, 0).is_err());

        let err =
            paired_bootstrap(&[ok, PairedTask { a: &a, b: &short }], 100, 0, 0.95).unwrap_err();
        assert!(err.contains("task 1") && err.contains("2 items"), "{err}");

        let err = bootstrap_distribution(&[PairedTask { a: &[], b: &[] }], 100, 0).unwrap_err();
        assert!(err.contains("task 0") && err.contains("no items"), "{err}");

        let err = paired_bootstrap(&[ok], 0, 0, 0.95).unwrap_err();
        assert!(err.contains("resamples"), "{err}");
        assert!(bootstrap_distribution(&[ok], 0, 0).is_err());

        for level in [0.0, 1.0, f64::NAN, -0.5] {
            let err = paired_bootstrap(&[ok], 10, 0, level).unwrap_err();
            assert!(err.contains("level"), "{err}");
        }

        let nan = [f64::NAN, 1.0];
        let err =
            paired_bootstrap(&[ok, ok, PairedTask { a: &a, b: &nan }], 10, 0, 0.95).unwrap_err();
        assert!(err.contains("task 2, item 0"), "{err}");
    }
}
