//! Bad input never panics or overflows the stack, and gives a diagnostic or a clean result fast.

use std::time::{Duration, Instant};

use rora::check::{CheckResult, check_bytes};
use rora::diag::Code;

fn checked(bytes: &[u8]) -> (CheckResult, Duration) {
    let t = Instant::now();
    let r = check_bytes("bad.kdl", bytes);
    let dt = t.elapsed();
    for d in &r.diagnostics {
        assert!(!d.labels.is_empty(), "{:?} has no span", d.code);
        for l in &d.labels {
            assert!(
                l.span.end() <= r.file.text.len(),
                "{:?}: span {:?} outside the file",
                d.code,
                l.span
            );
        }
    }
    (r, dt)
}

fn codes(r: &CheckResult) -> Vec<Code> {
    r.diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn garbage_bytes() {
    // A fixed xorshift stream (no RNG crate needed for determinism).
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let bytes: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let (r, _) = checked(&bytes);
    assert_eq!(codes(&r), vec![Code::InvalidUtf8]);
    let printable: Vec<u8> = bytes
        .iter()
        .map(|b| b"{}\"=()#/*; \nabc12."[(*b as usize) % 18])
        .collect();
    let (r, _) = checked(&printable);
    assert!(r.has_errors());
}

#[test]
fn ten_megabytes() {
    let line = "model \"m\" { random; }\n";
    let big = line.repeat(10 * 1024 * 1024 / line.len() + 1);
    assert!(big.len() >= 10 * 1024 * 1024);
    let (r, dt) = checked(big.as_bytes());
    assert_eq!(codes(&r), vec![Code::TooLarge]);
    assert!(dt < Duration::from_secs(2), "{dt:?}");
}

#[test]
fn ten_thousand_nested_nodes() {
    let s = format!("{}{}", "a {\n".repeat(10_000), "}\n".repeat(10_000));
    let (r, _) = checked(s.as_bytes());
    assert_eq!(codes(&r), vec![Code::TooDeep]);
    // Deep but allowed nesting goes through the parser and the shape pass.
    let s = format!("model \"m\" {}{}", "{ x ".repeat(60), "}".repeat(60));
    let (r, _) = checked(s.as_bytes());
    assert!(r.has_errors() && !codes(&r).contains(&Code::TooDeep));
}

/// 5,000 stages in one dependency chain: checks clean, and plans, without recursion.
#[test]
fn five_thousand_stages() {
    let mut s = String::from("model \"p0\" {\n    random\n}\n");
    for i in 1..5000 {
        s.push_str(&format!(
            "prune \"p{i}\" model=\"p{}\" {{\n    method \"magnitude\"\n    sparsity 0.1\n}}\n",
            i - 1
        ));
    }
    let (r, dt) = checked(s.as_bytes());
    assert!(
        !r.has_errors(),
        "{:?}",
        &r.diagnostics[..r.diagnostics.len().min(3)]
    );
    let p = r.pipeline.unwrap();
    assert_eq!(p.stages.len(), 5000);
    assert_eq!(p.stages[4999].name, "p4999");
    let plan = rora::plan::plan(&p, &mut rora::plan::DigestMemo::new()).unwrap();
    assert_eq!(plan.jobs.len(), 5000);
    assert!(dt < Duration::from_secs(20), "{dt:?}");
    // The same chain closed into a cycle reports it with its path.
    let cyclic = s.replacen(
        "model \"p0\" {\n    random\n}\n",
        "prune \"p0\" model=\"p4999\" {\n    method \"magnitude\"\n    sparsity 0.1\n}\n",
        1,
    );
    let (r, _) = checked(cyclic.as_bytes());
    assert_eq!(codes(&r), vec![Code::Cycle]);
    assert!(
        r.diagnostics[0].message.contains("p0 -> p4999 -> p4998"),
        "{}",
        &r.diagnostics[0].message[..200]
    );
}
