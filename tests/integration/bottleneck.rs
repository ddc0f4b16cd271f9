//! Series and Parallel bottleneck adapters (LLM-Adapters) end to end through the CLI: training on
//! the tiny model lowers the loss, the train stage is evaluated unmerged under both protocols
//! (generation with beam search), the saved folder is LLM-Adapters' layout and loads back into a
//! pipeline with the same scores, and merging one is refused before anything runs.

use std::path::{Path, PathBuf};

use crate::support::{output_dir, rora, text};

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

const MODEL: &str = r#"
model "tiny" {
    random layers=2 hidden=64 heads=4 kv-heads=2 ffn=128 seed=5
}
"#;

fn losses(metrics: &Path) -> Vec<f64> {
    std::fs::read_to_string(metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "train")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}

fn results(dir: &Path) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    v["results"].clone()
}

#[test]
fn bottleneck_adapters_train_evaluate_unmerged_and_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let data = crate::root().join("datasets/commonsense");
    let p = write(
        dir.path(),
        "b.kdl",
        &format!(
            r#"sweep method "series" "parallel"
{MODEL}
data "cs" {{
    files "{data}/*.train.jsonl"
    template "llm-adapters"
    max-len 64
    limit 64
}}
adapter "ad" model="tiny" {{
    method (sweep)"method"
    bottleneck 16 learn-scale=#true
    dropout 0.1
}}
train "ft" adapter="ad" data="cs" {{
    steps 8
    batch 4
    lr 1e-2
    seed 1
}}
eval "ll" model="ft" {{
    tasks "boolq" "arc-e"
    protocol "loglik"
    limit 8
}}
eval "gen" model="ft" {{
    tasks "boolq"
    protocol "llm-adapters"
    limit 3
    beams 2
    max-new-tokens 4
}}
report "r" from="ll" {{
    table
}}
"#,
            data = data.display()
        ),
    );
    let o = rora(&["run", p.to_str().unwrap()], &cache);
    assert!(o.status.success(), "{}", text(&o));
    for method in ["series", "parallel"] {
        let ft = output_dir(&cache, &format!("ft@method={method}"), &p);
        let l = losses(&ft.join("metrics.jsonl"));
        assert_eq!(l.len(), 8);
        assert!(l[7] < l[0], "{method}: loss {l:?}");
        let cfg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(ft.join("adapter/adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(cfg["peft_type"], "BOTTLENECK");
        assert_eq!(cfg["scaling"], "learned");
        assert_eq!(cfg["use_parallel_adapter"], method == "parallel");
        let targets = if method == "series" {
            serde_json::json!(["down_proj"])
        } else {
            serde_json::json!(["up_proj", "down_proj"])
        };
        assert_eq!(cfg["target_modules"], targets);
        assert!(ft.join("adapter/adapter_model.bin").is_file());
        let generated = output_dir(&cache, &format!("gen@method={method}"), &p);
        assert!(results(&generated)["boolq"]["exact_match,none"].is_number());
    }
    let table = std::fs::read_to_string(output_dir(&cache, "r", &p).join("table.md")).unwrap();
    assert!(
        table.contains("| series |") && table.contains("| parallel |"),
        "{table}"
    );

    // The trained series folder, loaded by path: the same scores as evaluating the train stage.
    let adapter = output_dir(&cache, "ft@method=series", &p).join("adapter");
    let q = write(
        dir.path(),
        "load.kdl",
        &format!(
            r#"{MODEL}
adapter "theirs" model="tiny" {{
    path "{adapter}"
}}
eval "ll" model="theirs" {{
    tasks "boolq" "arc-e"
    protocol "loglik"
    limit 8
}}
"#,
            adapter = adapter.display()
        ),
    );
    let o = rora(&["run", q.to_str().unwrap()], &cache);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        results(&output_dir(&cache, "ll", &q)),
        results(&output_dir(&cache, "ll@method=series", &p))
    );

    // A loaded folder's method is known at check time: its merge is refused before any run.
    let m = write(
        dir.path(),
        "merge.kdl",
        &format!(
            "{}\nmerge \"merged\" from=\"theirs\"\n",
            std::fs::read_to_string(&q).unwrap()
        ),
    );
    let o = rora(&["check", m.to_str().unwrap()], &cache);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("rora::semantic::merge-unmergeable") && t.contains("eval"),
        "{t}"
    );
}
