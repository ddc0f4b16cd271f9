//! `tests/ui/check/{pass,fail}/*.kdl`: each failing file starts with `// expect: <code>`; the test
//! asserts that code is reported and snapshots the plain rendering (what a user sees, no colour,
//! width 100). Passing files must check without errors.

use std::collections::BTreeSet;
use std::path::Path;

use rora::check::check_file;
use rora::diag::{Format, render};

fn rel(path: &Path) -> std::path::PathBuf {
    path.strip_prefix(crate::root())
        .unwrap_or(path)
        .to_path_buf()
}

fn expected_code(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let first = text.lines().next().unwrap_or_default();
    first
        .strip_prefix("// expect: ")
        .unwrap_or_else(|| panic!("{} lacks `// expect: <code>`", path.display()))
        .trim()
        .to_string()
}

#[test]
fn failing_pipelines_report_their_code_and_match_snapshots() {
    insta::glob!("../ui/check/fail", "*.kdl", |path| {
        let r = check_file(rel(path)).unwrap();
        let code = expected_code(path);
        let codes: Vec<&str> = r.diagnostics.iter().map(|d| d.code.name()).collect();
        assert!(
            codes.contains(&code.as_str()),
            "{}: expected {code}, got {codes:?}",
            path.display()
        );
        for d in &r.diagnostics {
            for l in &d.labels {
                assert!(
                    l.span.end() <= r.file.text.len(),
                    "{}: span outside the file",
                    path.display()
                );
            }
        }
        insta::assert_snapshot!(render(&r.file, &r.diagnostics, Format::Plain));
    });
}

#[test]
fn the_fail_corpus_covers_at_least_30_distinct_codes() {
    let dir = crate::root().join("tests/ui/check/fail");
    let mut codes = BTreeSet::new();
    let mut files = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "kdl") {
            files += 1;
            codes.insert(expected_code(&p));
        }
    }
    assert!(
        files >= 30 && codes.len() >= 30,
        "{files} files, {} distinct codes",
        codes.len()
    );
}

#[test]
fn passing_pipelines_check_clean() {
    insta::glob!("../ui/check/pass", "*.kdl", |path| {
        let r = check_file(rel(path)).unwrap();
        assert!(
            !r.has_errors(),
            "{}",
            render(&r.file, &r.diagnostics, Format::Plain)
        );
        assert!(r.pipeline.is_some());
    });
}

#[test]
fn json_report_has_exact_offsets() {
    let r = rora::check::check_bytes("x.kdl", b"model \"m\" {\n    rnadom\n}\n");
    let json: serde_json::Value =
        serde_json::from_str(&render(&r.file, &r.diagnostics, Format::Json)).unwrap();
    let d = &json["diagnostics"][0];
    assert_eq!(d["code"], "rora::shape::unknown-child");
    assert_eq!(d["help"], "did you mean `random`?");
    assert_eq!(
        (
            d["labels"][0]["start"].as_u64(),
            d["labels"][0]["len"].as_u64()
        ),
        (Some(16), Some(6))
    );
    assert_eq!(
        (
            d["labels"][0]["line"].as_u64(),
            d["labels"][0]["column"].as_u64()
        ),
        (Some(2), Some(5))
    );
}
