//! `merge ... { keep-sparsity #true }` on an unstructured-pruned tiny model, through `rora run`:
//! the merged weights have exactly the pruned base's zeros, a plain merge fills them, and the
//! stage's summary says how sparse both are and how much of the update was dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device, Tensor};

fn rora(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rora"))
        .args(args)
        .env("RORA_CACHE_DIR", cache)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `rora show-output` of a stage: its output dir and its summary JSON.
fn output(stage: &str, pipeline: &str, cache: &Path) -> (PathBuf, serde_json::Value) {
    let o = rora(&["show-output", stage, pipeline], cache);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let dir = t
        .lines()
        .find_map(|l| l.strip_prefix("output:"))
        .map(|s| PathBuf::from(s.trim()))
        .unwrap_or_else(|| panic!("no output line: {t}"));
    let summary = t
        .split_once("summary: ")
        .map(|(_, j)| serde_json::from_str(j.trim()).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (dir, summary)
}

/// Zero masks of the projection weights in an HF model dir.
fn zero_masks(model_dir: &Path) -> HashMap<String, Vec<bool>> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir(model_dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "safetensors") {
            continue;
        }
        for (name, t) in candle_core::safetensors::load(&p, &Device::Cpu).unwrap() {
            if name.ends_with("_proj.weight") {
                let v = flat(&t);
                out.insert(name, v.iter().map(|x| *x == 0.0).collect());
            }
        }
    }
    out
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn keep_sparsity_merge_keeps_the_pruned_zero_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let data = crate::root().join("datasets/commonsense");
    let src = format!(
        r#"
model "tiny" {{
    random layers=2 hidden=32 heads=4 kv-heads=2 ffn=64 seed=5
}}
data "cs" {{
    files "{data}/boolq.train.jsonl"
    max-len 48
    limit 16
}}
prune "half" model="tiny" {{
    method "magnitude"
    sparsity 0.5
}}
adapter "ad" model="half" {{
    rank 4
    alpha 8
    targets "q_proj" "v_proj" "up_proj" "down_proj"
}}
train "ft" adapter="ad" data="cs" {{
    steps 3
    batch 4 micro=4
    lr 0.05
}}
merge "dense" from="ft"
merge "sparse" from="ft" {{
    keep-sparsity #true
}}
"#,
        data = data.display()
    );
    let p = dir.path().join("sparse.kdl");
    std::fs::write(&p, src).unwrap();
    let ps = p.to_str().unwrap();
    let run = rora(&["run", ps], &cache);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));

    let (base_dir, _) = output("half", ps, &cache);
    let (sparse_dir, summary) = output("sparse", ps, &cache);
    let (dense_dir, dense_summary) = output("dense", ps, &cache);
    let base = zero_masks(&base_dir.join("model"));
    let sparse = zero_masks(&sparse_dir.join("model"));
    let dense = zero_masks(&dense_dir.join("model"));
    assert_eq!(
        base.len(),
        14,
        "7 projections x 2 layers: {:?}",
        base.keys()
    );

    let (mut dense_zeros, mut base_zeros) = (0, 0);
    for (name, mask) in &base {
        // Exactly the base's zeros where an adapter was merged, and untouched elsewhere.
        assert_eq!(&sparse[name], mask, "{name}: zero pattern changed");
        base_zeros += mask.iter().filter(|z| **z).count();
        dense_zeros += dense[name].iter().filter(|z| **z).count();
    }
    let total: usize = base.values().map(Vec::len).sum();
    assert_eq!(base_zeros * 2, total, "magnitude 50% per matrix");
    // The plain merge fills the zeros of every adapted projection (q, v, up, down: 4 of 7).
    assert!(
        dense_zeros * 10 < base_zeros * 5,
        "dense merge kept {dense_zeros} of {base_zeros} zeros"
    );

    assert_eq!(summary["keep_sparsity"], true, "{summary}");
    assert_eq!(summary["merged_modules"], 8, "{summary}");
    assert_eq!(summary["linear_sparsity_base"], 0.5, "{summary}");
    assert_eq!(summary["linear_sparsity_merged"], 0.5, "{summary}");
    let dropped = summary["dropped_update_mean"].as_f64().unwrap();
    // B A is dense, so about half of the update falls on pruned positions (relative norm ~0.7).
    assert!((0.3..0.95).contains(&dropped), "{summary}");
    assert_eq!(dense_summary["keep_sparsity"], false, "{dense_summary}");
}
