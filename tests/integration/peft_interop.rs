//! Round trips with the real Hugging Face libraries, where this machine has them: adapters that
//! PEFT trains (LoRA, rsLoRA, DoRA, rank/alpha patterns with layers_to_transform, a regex
//! target) enter a rora pipeline, and rora's logits, unmerged and merged, equal PEFT's.
//!
//! Needs a Python with torch, transformers and peft: `$PEFT_VENV/bin/python`, else
//! `${TMPDIR:-/tmp}/peft-venv/bin/python` (what `../shared/bench/setup.sh` makes). Without one
//! the test prints why and passes without checking anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{rora, text};

/// The Python with torch + transformers + peft, or why there is none.
pub fn peft_python() -> Result<PathBuf, String> {
    let venv = std::env::var_os("PEFT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp"))
                .join("peft-venv")
        });
    let py = venv.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import torch, transformers, peft"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(py)
    } else {
        Err(format!(
            "no Python with torch, transformers and peft at {} (set PEFT_VENV, or make one with ../shared/bench/setup.sh)",
            py.display()
        ))
    }
}

fn read_logits(path: &Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const TOKENS: &str = "3,17,42,7,99,128,5,64,250,11";

#[test]
fn adapters_peft_trained_match_peft_logits_in_a_rora_pipeline() {
    let py = match peft_python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // The base: rora's random tiny LLaMA, saved as an HF folder by its model stage.
    let model =
        "model \"tiny\" {\n    random layers=2 hidden=64 heads=4 kv-heads=2 ffn=128 seed=11\n}\n";
    let base_p = dir.path().join("base.kdl");
    std::fs::write(&base_p, model).unwrap();
    let o = rora(&["run", base_p.to_str().unwrap()], &cache);
    assert!(o.status.success(), "{}", text(&o));
    let o = rora(
        &[
            "--format",
            "json",
            "show-output",
            "tiny",
            base_p.to_str().unwrap(),
        ],
        &cache,
    );
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let model_dir = PathBuf::from(shown["output"].as_str().unwrap()).join("model");

    let script = crate::root().join("tests/interop/peft_adapter.py");
    for kind in ["lora", "rslora", "dora", "patterns", "regex"] {
        let out = dir.path().join(kind);
        let o = Command::new(&py)
            .arg(&script)
            .args([
                model_dir.to_str().unwrap(),
                out.to_str().unwrap(),
                kind,
                TOKENS,
            ])
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "{kind}: {}", text(&o));
        let peft_logits = out.join("logits.safetensors");

        // Unmerged: the folder installed on the base.
        let ours = out.join("rora-unmerged.safetensors");
        let o = rora(
            &[
                "model",
                "logits",
                model_dir.to_str().unwrap(),
                "--adapter",
                out.join("adapter").to_str().unwrap(),
                "--tokens",
                TOKENS,
                "--out",
                ours.to_str().unwrap(),
            ],
            &cache,
        );
        assert!(o.status.success(), "{kind}: {}", text(&o));
        let du = max_diff(
            &read_logits(&ours, "logits"),
            &read_logits(&peft_logits, "unmerged"),
        );
        assert!(
            du < 1e-4,
            "{kind}: unmerged logits differ from PEFT's by {du}"
        );

        // Through a pipeline: the adapter stage loads the folder, the merge folds it in.
        let p = out.join("p.kdl");
        std::fs::write(
            &p,
            format!(
                "model \"base\" {{\n    path \"{}\"\n}}\nadapter \"theirs\" model=\"base\" {{\n    path \"adapter\"\n}}\nmerge \"m\" from=\"theirs\"\n",
                model_dir.display()
            ),
        )
        .unwrap();
        let o = rora(&["run", p.to_str().unwrap()], &cache);
        assert!(o.status.success(), "{kind}: {}", text(&o));
        let o = rora(
            &["--format", "json", "show-output", "m", p.to_str().unwrap()],
            &cache,
        );
        let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let merged_dir = PathBuf::from(shown["output"].as_str().unwrap()).join("model");
        let merged = out.join("rora-merged.safetensors");
        let o = rora(
            &[
                "model",
                "logits",
                merged_dir.to_str().unwrap(),
                "--tokens",
                TOKENS,
                "--out",
                merged.to_str().unwrap(),
            ],
            &cache,
        );
        assert!(o.status.success(), "{kind}: {}", text(&o));
        let d = max_diff(
            &read_logits(&merged, "logits"),
            &read_logits(&peft_logits, "merged"),
        );
        assert!(d < 1e-4, "{kind}: merged logits differ from PEFT's by {d}");
        eprintln!("{kind}: rora = PEFT within {du:.1e} unmerged, {d:.1e} merged");
    }
}
