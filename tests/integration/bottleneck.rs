//! Series and Parallel bottleneck adapters (LLM-Adapters) and prefix tuning (PEFT) end to end
//! through the CLI: training on the tiny model lowers the loss, the train stage is evaluated
//! unmerged under both protocols (generation with beam search, the prefix in the KV cache), the
//! saved folders are LLM-Adapters' / PEFT's layouts and load back into a pipeline with the same
//! scores, and merging one is refused before anything runs; the shipped Table I example trains
//! all six methods on the tiny model and reports them in one table.

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

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn results(dir: &Path) -> serde_json::Value {
    json(&dir.join("results.json"))["results"].clone()
}

#[test]
fn bottleneck_and_prefix_adapters_train_evaluate_unmerged_and_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let data = crate::root().join("datasets/commonsense");
    let p = write(
        dir.path(),
        "b.kdl",
        &format!(
            r#"sweep method "series" "parallel" "prefix"
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
    virtual-tokens 4
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
    for method in ["series", "parallel", "prefix"] {
        let ft = output_dir(&cache, &format!("ft@method={method}"), &p);
        let l = losses(&ft.join("metrics.jsonl"));
        assert_eq!(l.len(), 8);
        assert!(l[7] < l[0], "{method}: loss {l:?}");
        let generated = output_dir(&cache, &format!("gen@method={method}"), &p);
        assert!(results(&generated)["boolq"]["exact_match,none"].is_number());
        let cfg = json(&ft.join("adapter/adapter_config.json"));
        assert!(ft.join("adapter/adapter_model.bin").is_file());
        if method == "prefix" {
            assert_eq!(cfg["peft_type"], "PREFIX_TUNING");
            assert_eq!(cfg["num_virtual_tokens"], 4);
            // tiny: 2 KV heads x 16
            assert_eq!(cfg["token_dim"], 32);
            continue;
        }
        assert_eq!(cfg["peft_type"], "BOTTLENECK");
        assert_eq!(cfg["scaling"], "learned");
        assert_eq!(cfg["use_parallel_adapter"], method == "parallel");
        let targets = if method == "series" {
            serde_json::json!(["down_proj"])
        } else {
            serde_json::json!(["up_proj", "down_proj"])
        };
        assert_eq!(cfg["target_modules"], targets);
    }
    let table = std::fs::read_to_string(output_dir(&cache, "r", &p).join("table.md")).unwrap();
    for m in ["series", "parallel", "prefix"] {
        assert!(table.contains(&format!("| {m} |")), "{table}");
    }
    for method in ["series", "prefix"] {
        load_back(&cache, dir.path(), &p, method);
    }
}

/// The trained folder of `method`, loaded by path, scores as the train stage did; and its merge is
/// refused at check time (a loaded folder's method is known before any run).
fn load_back(cache: &Path, dir: &Path, p: &Path, method: &str) {
    let adapter = output_dir(cache, &format!("ft@method={method}"), p).join("adapter");
    let q = write(
        dir,
        &format!("load-{method}.kdl"),
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
    let o = rora(&["run", q.to_str().unwrap()], cache);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        results(&output_dir(cache, "ll", &q)),
        results(&output_dir(cache, &format!("ll@method={method}"), p)),
        "{method}"
    );
    let m = write(
        dir,
        &format!("merge-{method}.kdl"),
        &format!(
            "{}\nmerge \"merged\" from=\"theirs\"\n",
            std::fs::read_to_string(&q).unwrap()
        ),
    );
    let o = rora(&["check", m.to_str().unwrap()], cache);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("rora::semantic::merge-unmergeable")
            && t.contains(&format!("the {method} adapter")),
        "{t}"
    );
}

// pipelines/table1_tiny.kdl: Table I's six methods trained on the tiny model and reported in one
// table with their trainable-parameter shares.
#[test]
fn the_table_one_example_trains_all_six_methods_into_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = crate::root().join("pipelines/table1_tiny.kdl");
    let o = rora(&["run", p.to_str().unwrap()], &cache);
    assert!(o.status.success(), "{}", text(&o));
    let table =
        std::fs::read_to_string(output_dir(&cache, "table-1", &p).join("table.md")).unwrap();
    for m in ["prefix", "series", "parallel", "lora", "dora", "rora"] {
        assert!(table.contains(&format!("| {m} |")), "{m}: {table}");
    }
}
