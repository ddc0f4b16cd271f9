//! PEFT adapters as pipeline inputs (`adapter "x" model=.. { path "dir" }`), without Python: an
//! adapter a train stage wrote (PEFT's layout) is copied out of the cache, loaded by a second
//! pipeline, evaluated unmerged and merged, and trained further; its folder is keyed by content.
//! The comparison with adapters PEFT itself trained is `peft_interop.rs`.

use std::path::{Path, PathBuf};

use crate::support::{output_dir as out_dir, rora, show_output, text};

const MODEL: &str =
    "model \"tiny\" {\n    random layers=2 hidden=32 heads=2 kv-heads=1 ffn=64 seed=5\n}\n";

fn data(root: &Path) -> String {
    format!(
        "data \"cs\" {{\n    files \"{}/*.train.jsonl\"\n    template \"llm-adapters\"\n    max-len 64\n    limit 16\n}}\n",
        root.join("datasets/commonsense").display()
    )
}

const EVAL: &str =
    "    tasks \"boolq\" \"arc-e\"\n    protocol \"loglik\"\n    limit 6\n    subset \"first\"\n";

fn accuracies(results: &Path) -> serde_json::Value {
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("results.json")).unwrap())
            .unwrap();
    r["results"].clone()
}

fn run_ok(cache: &Path, pipeline: &Path) -> String {
    let o = rora(&["run", pipeline.to_str().unwrap()], cache);
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

#[test]
fn a_peft_folder_is_evaluated_merged_and_trained_further_like_one_rora_made() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let root = crate::root();

    // 1. rora trains an adapter (alpha != r, rsLoRA scale) and evaluates it unmerged.
    let first = dir.path().join("first.kdl");
    std::fs::write(
        &first,
        format!(
            "{MODEL}{}adapter \"ad\" model=\"tiny\" {{\n    scaling \"rora\"\n    rank 4\n    alpha 6\n    targets \"q_proj\" \"v_proj\" \"up_proj\"\n}}\n\
             train \"ft\" adapter=\"ad\" data=\"cs\" {{\n    steps 3\n    batch 4\n    lr 5e-2\n}}\n\
             eval \"e\" model=\"ft\" {{\n{EVAL}}}\n",
            data(&root)
        ),
    )
    .unwrap();
    run_ok(&cache, &first);
    let theirs = dir.path().join("adapters/theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    let trained = out_dir(&cache, "ft", &first).join("adapter");
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(trained.join(f), theirs.join(f)).unwrap();
    }
    let want = accuracies(&out_dir(&cache, "e", &first));

    // 2. The folder enters another pipeline: evaluated unmerged, merged then evaluated, and
    //    trained further.
    let second = dir.path().join("second.kdl");
    std::fs::write(
        &second,
        format!(
            "{MODEL}{}adapter \"theirs\" model=\"tiny\" {{\n    path \"adapters/theirs\"\n}}\n\
             eval \"unmerged\" model=\"theirs\" {{\n{EVAL}}}\n\
             merge \"m\" from=\"theirs\"\n\
             eval \"merged\" model=\"m\" {{\n{EVAL}}}\n\
             train \"more\" adapter=\"theirs\" data=\"cs\" {{\n    steps 2\n    batch 4\n    lr 5e-2\n}}\n",
            data(&root)
        ),
    )
    .unwrap();
    let o = rora(&["plan", second.to_str().unwrap()], &cache);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("s=3.0000 (PEFT folder, rora alpha=6 r=4)"),
        "the plan shows the loaded adapter's settings: {}",
        text(&o)
    );
    run_ok(&cache, &second);
    let shown = show_output(&cache, "theirs", &second);
    assert_eq!(shown["summary"]["scaling"], "rora");
    assert_eq!(shown["summary"]["rank"], 4);
    assert_eq!(shown["summary"]["modules"], 6, "3 targets x 2 layers");
    // The files are kept byte for byte.
    let kept = PathBuf::from(shown["output"].as_str().unwrap()).join("adapter");
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        assert_eq!(
            std::fs::read(kept.join(f)).unwrap(),
            std::fs::read(theirs.join(f)).unwrap(),
            "{f}"
        );
    }
    // The same adapter gives the same scores, unmerged and merged.
    let unmerged = accuracies(&out_dir(&cache, "unmerged", &second));
    assert_eq!(unmerged, want, "unmerged");
    let merged = accuracies(&out_dir(&cache, "merged", &second));
    for (task, r) in want.as_object().unwrap() {
        let (a, b) = (r["acc,none"].as_f64(), merged[task]["acc,none"].as_f64());
        assert_eq!(a, b, "{task}: merged {merged} vs {want}");
    }
    // Training further starts from the loaded weights and changes them.
    let more = out_dir(&cache, "more", &second).join("adapter");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(more.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(
        (cfg["r"].as_u64(), cfg["use_rslora"].as_bool()),
        (Some(4), Some(true))
    );
    assert_ne!(
        std::fs::read(more.join("adapter_model.safetensors")).unwrap(),
        std::fs::read(theirs.join("adapter_model.safetensors")).unwrap()
    );

    // 3. The folder is keyed by content: new weights recompute the adapter and what uses it.
    let again = run_ok(&cache, &second);
    assert!(!again.contains("computed"), "{again}");
    let mut bytes = std::fs::read(theirs.join("adapter_model.safetensors")).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    std::fs::write(theirs.join("adapter_model.safetensors"), bytes).unwrap();
    let o = rora(&["plan", second.to_str().unwrap()], &cache);
    let plan = text(&o);
    let cached = |label: &str| {
        let cols: Vec<&str> = plan
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|c| c.get(1) == Some(&label))
            .unwrap_or_else(|| panic!("{label} in {plan}"));
        cols[4] == "yes"
    };
    assert!(cached("tiny") && cached("cs"), "{plan}");
    for job in ["theirs", "unmerged", "m", "merged", "more"] {
        assert!(!cached(job), "{job}: {plan}");
    }
}

#[test]
fn loaded_adapters_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let ia3 = dir.path().join("ia3");
    std::fs::create_dir_all(&ia3).unwrap();
    std::fs::write(
        ia3.join("adapter_config.json"),
        r#"{"peft_type": "IA3", "target_modules": ["q_proj"]}"#,
    )
    .unwrap();
    let tokens = dir.path().join("tok");
    std::fs::create_dir_all(&tokens).unwrap();
    std::fs::write(
        tokens.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "trainable_token_indices": [3, 4]}"#,
    )
    .unwrap();
    let p = dir.path().join("p.kdl");
    std::fs::write(
        &p,
        format!(
            "{MODEL}adapter \"a\" model=\"tiny\" {{\n    path \"ia3\"\n    rank 8\n}}\n\
             adapter \"b\" model=\"tiny\" {{\n    path \"tok\"\n}}\n\
             adapter \"fresh\" model=\"tiny\" {{\n    rank 4\n}}\n\
             eval \"e\" model=\"fresh\" {{\n{EVAL}}}\n\
             merge \"m\" from=\"fresh\"\n"
        ),
    )
    .unwrap();
    // Run from the pipeline's folder, so any absolute path in a message would stand out.
    let o = crate::support::rora_cmd(&["check", "p.kdl"], &cache)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    for want in [
        "rora::semantic::loaded-adapter-option",
        "brings its own `rank`",
        "rora::semantic::bad-adapter-folder",
        "peft_type \"IA3\" is not supported",
        "trainable_token_indices is not supported",
        "rora::semantic::fresh-adapter-input",
        "rora::resolve::merge-needs-trained",
    ] {
        assert!(t.contains(want), "{want}: {t}");
    }
    assert!(
        !t.contains(&dir.path().display().to_string()),
        "no machine paths: {t}"
    );
}
