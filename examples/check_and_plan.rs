//! Check and plan a pipeline through the library API, then time the two benchmark cases of
//! docs/BENCHMARKS.md: `check` of a generated 1,000-stage pipeline, and `plan` of a
//! 6 ranks x 3 methods x 3 seeds sweep.
//!
//! ```text
//! cargo run --release --example check_and_plan [pipeline.kdl]
//! ```

use std::time::Instant;

use rora::check::{check_bytes, check_file};
use rora::diag::{Format, render};
use rora::plan::{DigestMemo, plan};

fn thousand_stages() -> String {
    let mut s = String::from(
        "model \"base\" {\n    random layers=2 hidden=64\n}\ndata \"d\" {\n    hub \"org/commonsense\"\n}\n",
    );
    for i in 0..998 {
        s.push_str(&format!("adapter \"a{i}\" model=\"base\" {{\n    rank {}\n    alpha 16\n    targets \"q_proj\" \"v_proj\"\n}}\n", 1 + i % 32));
    }
    s
}

const SWEEP: &str = r#"
sweep rank 4 8 16 32 64 128
zip {
    method "lora" "dora" "lora"
    scaling "lora" "lora" "rora"
}
sweep seed 1 2 3
model "base" {
    hub "huggyllama/llama-7b"
}
data "cs" {
    hub "zwhe99/commonsense_170k"
}
adapter "ad" model="base" {
    method (sweep)"method"
    scaling (sweep)"scaling"
    rank (sweep)"rank"
    alpha-per-rank 2
    targets "q_proj" "k_proj" "v_proj" "up_proj" "down_proj"
}
train "ft" adapter="ad" data="cs" {
    seed (sweep)"seed"
}
merge "m" from="ft"
eval "ev" model="m" {
    tasks "boolq" "piqa"
    dir "."
}
report "r" from="ev" {
    table
}
"#;

fn best_of<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = f();
    for _ in 0..n {
        let t = Instant::now();
        out = f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    (best, out)
}

fn main() {
    if let Some(path) = std::env::args().nth(1) {
        match check_file(&path) {
            Ok(r) => {
                print!("{}", render(&r.file, &r.diagnostics, Format::Plain));
                if let Some(p) = r.pipeline {
                    match plan(&p, &mut DigestMemo::new()) {
                        Ok(pl) => {
                            for j in &pl.jobs {
                                println!("{:>4} {:<40} {}", j.id.0, j.label, j.key.short());
                            }
                        }
                        Err(e) => eprintln!("plan failed: {e}"),
                    }
                }
            }
            Err(e) => eprintln!("cannot read {path}: {e}"),
        }
    }
    let src = thousand_stages();
    let (ms, r) = best_of(10, || check_bytes("bench-1000.kdl", src.as_bytes()));
    assert!(!r.has_errors());
    println!(
        "check, 1,000 stages ({} KiB): {ms:.2} ms (best of 10)",
        src.len() / 1024
    );
    // Baseline in the same process: `kdl`'s own parser on the same text (what `check` used
    // before the fast path; it is still the fallback for KDL outside the common subset).
    let (ms_kdl, doc) = best_of(10, || kdl::KdlDocument::parse_v2(&src));
    assert!(doc.is_ok());
    println!(
        "  baseline: kdl::KdlDocument::parse_v2 alone on the same text: {ms_kdl:.2} ms (best of 10); check / baseline = {:.2}",
        ms / ms_kdl
    );
    let checked = check_bytes("bench-sweep.kdl", SWEEP.as_bytes());
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let p = checked.pipeline.unwrap();
    let (ms_plan, pl) = best_of(10, || plan(&p, &mut DigestMemo::new()).unwrap());
    let (ms_both, _) = best_of(10, || {
        let r = check_bytes("bench-sweep.kdl", SWEEP.as_bytes());
        plan(&r.pipeline.unwrap(), &mut DigestMemo::new()).unwrap()
    });
    println!(
        "plan, 6 ranks x 3 methods x 3 seeds: {} jobs, plan {ms_plan:.2} ms, check + plan {ms_both:.2} ms (best of 10)",
        pl.jobs.len()
    );
}
