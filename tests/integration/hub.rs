//! The hub end to end inside `rora run`, against a local server in the hub's URL layout
//! ([`crate::fakehub`]) through `HF_ENDPOINT`, with the HF cache in a temp dir: model and dataset
//! stages download from it, keys pin the commit the branch resolves to (a moved branch is a miss
//! for the model stage and what follows, the same commit a hit), offline mode works from the HF
//! cache, and a missing repo, a missing file or an unreachable server is a clear error. Also the
//! shipped `sheared_llama_1.3b.kdl`, shrunk, served under the repo ids it names.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::fakehub::{FakeHub, Files, sha, tiny_model_files};
use crate::support::{data_dir, jobs_with, rora_cmd, run_logs, text, walk};

/// `rora <args>` against `endpoint`, with the HF cache under `hf_home`.
fn hub_cmd(args: &[&str], cache: &Path, hf_home: &Path, endpoint: &str) -> Command {
    let mut c = rora_cmd(args, cache);
    c.env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", hf_home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_TOKEN_PATH");
    c
}

fn run(args: &[&str], cache: &Path, hf_home: &Path, endpoint: &str) -> Output {
    hub_cmd(args, cache, hf_home, endpoint).output().unwrap()
}

/// The first `n` rows of a shipped train file.
fn rows(file: &str, n: usize) -> Vec<u8> {
    let text = std::fs::read_to_string(data_dir().join(file)).unwrap();
    let mut out: String = text.lines().take(n).collect::<Vec<_>>().join("\n");
    out.push('\n');
    out.into_bytes()
}

fn pipeline(dir: &Path, model_repo: &str) -> PathBuf {
    let text = format!(
        r#"
model "base" {{
    hub "{model_repo}" revision="main"
}}
data "cs" {{
    hub "org/cs-data"
    template "llm-adapters"
    max-len 64
}}
adapter "ad" model="base" {{
    rank 2
    alpha 8
    targets "q_proj" "v_proj"
}}
train "ft" adapter="ad" data="cs" {{
    steps 2
    batch 2 micro=2
    seed 7
}}
"#
    );
    let p = dir.join(format!("hub-{}.kdl", model_repo.replace('/', "-")));
    std::fs::write(&p, text).unwrap();
    p
}

/// The words of a rendered diagnostic, without its line wrapping and box drawing.
fn flat(t: &str) -> String {
    t.split_whitespace()
        .filter(|w| !["│", "×", "╰─▶", "├─▶"].contains(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn last_log(cache: &Path) -> Vec<serde_json::Value> {
    run_logs(cache).pop().unwrap()
}

#[test]
fn hub_model_and_dataset_run_pinned_to_the_resolved_commit_and_offline() {
    let hub = FakeHub::start();
    let (a, b) = (sha("tiny-a"), sha("tiny-b"));
    hub.push("models", "org/tiny", &a, tiny_model_files(1));
    hub.push("models", "org/tiny", &b, tiny_model_files(2));
    hub.set_main("models", "org/tiny", &a);
    let mut data = Files::new();
    data.insert("boolq.train.jsonl".into(), rows("boolq.train.jsonl", 8));
    data.insert("README.md".into(), b"a dataset card, not data".to_vec());
    hub.push("datasets", "org/cs-data", &sha("cs-1"), data);

    let dir = tempfile::tempdir().unwrap();
    let (cache, hf) = (dir.path().join("cache"), dir.path().join("hf"));
    let p = pipeline(dir.path(), "org/tiny");
    let ps = p.to_str().unwrap();

    // First run: everything downloaded and computed; the model entry records commit A.
    let first = run(&["run", ps], &cache, &hf, &hub.url);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let log1 = last_log(&cache);
    let done1 = jobs_with(&log1, "job_done");
    assert_eq!(done1.len(), 5, "{}", text(&first));
    let model_manifest = std::fs::read_to_string(
        crate::support::entry_dir(&cache, &done1["base"]).join("manifest.json"),
    )
    .unwrap();
    assert!(
        model_manifest.contains(&format!("\"hub_commit\": \"{a}\"")),
        "{model_manifest}"
    );
    assert!(
        hf.join("hub/models--org--tiny/snapshots")
            .join(&a)
            .join("model.safetensors")
            .is_file()
    );
    assert!(
        hf.join("hub/datasets--org--cs-data/snapshots")
            .join(sha("cs-1"))
            .join("boolq.train.jsonl")
            .is_file()
    );

    // Same commit: all hits.
    let second = run(&["run", ps], &cache, &hf, &hub.url);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert_eq!(jobs_with(&last_log(&cache), "job_cached"), done1);

    // The branch moves: the model and what follows are misses; the dataset is not.
    hub.set_main("models", "org/tiny", &b);
    let third = run(&["run", ps], &cache, &hf, &hub.url);
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));
    let log3 = last_log(&cache);
    let (done3, cached3) = (jobs_with(&log3, "job_done"), jobs_with(&log3, "job_cached"));
    assert_eq!(
        done3.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ad", "base", "cs.tokens.base", "ft"]
    );
    assert_eq!(cached3.get("cs"), done1.get("cs"));
    assert!(
        done3.iter().all(|(j, k)| done1[j] != *k),
        "new keys downstream"
    );

    // Back to commit A (written as the sha this time): hits again, same keys as the first run.
    hub.set_main("models", "org/tiny", &a);
    let pinned = dir.path().join("pinned.kdl");
    std::fs::write(
        &pinned,
        std::fs::read_to_string(&p)
            .unwrap()
            .replace("revision=\"main\"", &format!("revision=\"{a}\"")),
    )
    .unwrap();
    let fourth = run(&["run", pinned.to_str().unwrap()], &cache, &hf, &hub.url);
    assert_eq!(fourth.status.code(), Some(0), "{}", text(&fourth));
    assert_eq!(jobs_with(&last_log(&cache), "job_cached"), done1);
    // Resolve `main` online once more so the HF cache's refs/main says A again.
    let fifth = run(&["plan", ps], &cache, &hf, &hub.url);
    assert_eq!(fifth.status.code(), Some(0), "{}", text(&fifth));

    // Offline, server gone, a fresh store: everything is computed from the HF cache alone, under
    // the keys of commit A.
    let url = hub.url.clone();
    drop(hub);
    let offline_cache = dir.path().join("cache-offline");
    let off = hub_cmd(&["run", ps], &offline_cache, &hf, &url)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(off.status.code(), Some(0), "{}", text(&off));
    assert_eq!(jobs_with(&last_log(&offline_cache), "job_done"), done1);
}

#[test]
fn hub_failures_are_clear_diagnostics() {
    let hub = FakeHub::start();
    let mut broken = tiny_model_files(1);
    broken.remove("model.safetensors");
    hub.push("models", "org/broken", &sha("broken"), broken);
    hub.push("datasets", "org/cs-data", &sha("cs-1"), {
        let mut f = Files::new();
        f.insert("boolq.train.jsonl".into(), rows("boolq.train.jsonl", 4));
        f
    });
    let dir = tempfile::tempdir().unwrap();
    let (cache, hf) = (dir.path().join("cache"), dir.path().join("hf"));

    // A repo the hub does not have: the plan cannot pin it.
    let p = pipeline(dir.path(), "org/missing");
    let out = run(&["run", p.to_str().unwrap()], &cache, &hf, &hub.url);
    let t = flat(&text(&out));
    assert_ne!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("stage `base`"), "{t}");
    assert!(t.contains("repository `org/missing` not found"), "{t}");

    // The repo exists but lacks its weights: the model stage fails naming the file.
    let p = pipeline(dir.path(), "org/broken");
    let out = run(&["run", p.to_str().unwrap()], &cache, &hf, &hub.url);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    let line = t
        .lines()
        .find(|l| l.contains("FAILED") && l.contains("base"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        line.contains("`org/broken`") && line.contains("file `model.safetensors` not found"),
        "{line}"
    );

    // Nothing listens on the endpoint.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let out = run(&["run", p.to_str().unwrap()], &cache, &hf, &closed);
    let t = flat(&text(&out));
    assert_ne!(out.status.code(), Some(0), "{t}");
    assert!(t.contains(&format!("cannot reach {closed}")), "{t}");
    // `rora plan` still shows the plan, warning that the hub stage is keyed by its branch name.
    let out = run(&["plan", p.to_str().unwrap()], &cache, &hf, &closed);
    let t = flat(&text(&out));
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("warning: hub: cannot reach") && t.contains("keyed by its revision name"),
        "{t}"
    );

    // Offline with an empty HF cache.
    let out = hub_cmd(
        &["run", p.to_str().unwrap()],
        &cache,
        &dir.path().join("hf-empty"),
        &hub.url,
    )
    .env("HF_HUB_OFFLINE", "1")
    .output()
    .unwrap();
    let t = text(&out);
    assert_ne!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("offline") && t.contains("not in the cache"),
        "{t}"
    );
    // No entry for any failed stage.
    assert!(
        walk(&cache.join("v1/entries"))
            .iter()
            .filter(|f| f.ends_with("manifest.json"))
            .all(|m| !std::fs::read_to_string(m)
                .unwrap()
                .contains("\"kind\": \"model\"")),
        "a failed model stage left an entry"
    );
}

/// Instruction rows in the layout of `zwhe99/commonsense_170k` (a JSON array of instruction,
/// input, output, answer).
fn commonsense_170k_rows() -> Vec<u8> {
    let mut out = Vec::new();
    for (q, a) in [
        ("is the sky blue", "true"),
        ("is fire cold", "false"),
        ("do fish swim", "true"),
        ("can stones fly", "false"),
        ("is water wet", "true"),
        ("is ice hot", "false"),
    ] {
        let instruction = format!(
            "Please answer the following question with true or false, question: {q}?\n\nAnswer format: true/false"
        );
        let row = serde_json::json!({
            "instruction": instruction,
            "input": "",
            "output": format!("the correct answer is {a}"),
            "answer": a,
        });
        out.push(row);
    }
    serde_json::to_vec_pretty(&out).unwrap()
}

#[test]
fn sheared_llama_pipeline_runs_end_to_end_against_a_served_hub() {
    let hub = FakeHub::start();
    hub.push(
        "models",
        "princeton-nlp/Sheared-LLaMA-1.3B",
        &sha("sheared"),
        tiny_model_files(5),
    );
    let mut data = Files::new();
    data.insert("commonsense_170k.json".into(), commonsense_170k_rows());
    hub.push("datasets", "zwhe99/commonsense_170k", &sha("cs170k"), data);

    // The shipped pipeline with its sizes shrunk (one rank, a few steps and rows); every stage,
    // source, sweep zip and option else as shipped.
    let shipped =
        std::fs::read_to_string(crate::root().join("pipelines/sheared_llama_1.3b.kdl")).unwrap();
    let mut src = shipped.clone();
    for (from, to) in [
        ("sweep rank 8 16 32 64 128", "sweep rank 2"),
        ("max-len 256", "max-len 48"),
        ("validation 120 seed=42", "validation 2 seed=42"),
        ("epochs 3", "steps 2"),
        ("batch 16 micro=4", "batch 2 micro=2"),
        ("warmup 100", "warmup 1"),
        (
            "protocol \"llm-adapters\"",
            "protocol \"llm-adapters\"\n    limit 1\n    max-new-tokens 4",
        ),
    ] {
        assert!(
            src.contains(from),
            "the shipped pipeline changed: `{from}` not found"
        );
        src = src.replace(from, to);
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sheared_small.kdl");
    std::fs::write(&p, src).unwrap();
    let (cache, hf) = (dir.path().join("cache"), dir.path().join("hf"));
    let out = run(&["run", p.to_str().unwrap()], &cache, &hf, &hub.url);
    let t = flat(&text(&out));
    assert_eq!(out.status.code(), Some(0), "{t}");
    // model, data, tokens, 3 x (adapter, train, merge, eval), report.
    let done = jobs_with(&last_log(&cache), "job_done");
    assert_eq!(done.len(), 16, "{t}");
    assert!(
        hub.requests()
            .iter()
            .any(|r| r.contains("princeton-nlp/Sheared-LLaMA-1.3B/resolve/"))
    );
    let table = walk(&cache.join("v1/entries"))
        .into_iter()
        .find(|f| f.ends_with("out/table.md"))
        .expect("the report's table");
    let md = std::fs::read_to_string(table).unwrap();
    for method in ["lora", "dora", "rora"] {
        assert!(md.contains(&format!("| {method} | 2 |")), "{method}: {md}");
    }
}

/// A hub dataset's `split` and `config` choose its files by the `datasets` library's naming
/// conventions: the train and test files of a configuration folder, different keys per split,
/// and a split or configuration the repo lacks is an error naming those it has.
#[test]
fn hub_dataset_split_and_config_choose_the_files() {
    let hub = FakeHub::start();
    let mut data = Files::new();
    data.insert(
        "main/boolq.train.jsonl".into(),
        rows("boolq.train.jsonl", 8),
    );
    data.insert("main/boolq.test.jsonl".into(), rows("boolq.train.jsonl", 3));
    data.insert("other/piqa.train.jsonl".into(), rows("piqa.train.jsonl", 5));
    data.insert("README.md".into(), b"a dataset card, not data".to_vec());
    hub.push("datasets", "org/cs-split", &sha("split-1"), data);

    let dir = tempfile::tempdir().unwrap();
    let (cache, hf) = (dir.path().join("cache"), dir.path().join("hf"));
    let write = |name: &str, props: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!("data \"d\" {{\n    hub \"org/cs-split\" {props}\n    max-len 64\n}}\n"),
        )
        .unwrap();
        p
    };
    let rows_of = |p: &Path| -> String {
        let ps = p.to_str().unwrap();
        let out = run(&["run", ps], &cache, &hf, &hub.url);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let show = run(&["show-output", "d", ps], &cache, &hf, &hub.url);
        let t = flat(&text(&show));
        // the stage summary's `"rows_per_task": { ... }`
        let at = t.find("rows_per_task").unwrap_or_else(|| panic!("{t}"));
        let end = t[at..].find('}').map_or(t.len(), |e| at + e);
        t[at..end].to_string()
    };
    let train = rows_of(&write("train.kdl", "config=\"main\""));
    assert!(train.contains("\"boolq\": 8"), "{train}");
    let test = rows_of(&write("test.kdl", "config=\"main\" split=\"test\""));
    assert!(test.contains("\"boolq\": 3"), "{test}");
    let other = rows_of(&write("other.kdl", "config=\"other\""));
    assert!(other.contains("piqa"), "{other}");
    assert!(!other.contains("boolq"), "{other}");

    for (name, props, want) in [
        (
            "val.kdl",
            "config=\"main\" split=\"validation\"",
            "no data file for split `validation` in configuration `main`: the files name the splits `test`, `train`",
        ),
        (
            "cfg.kdl",
            "config=\"fr\"",
            "no configuration `fr`: the repo's data files are in `main`, `other`",
        ),
    ] {
        let p = write(name, props);
        let out = run(&["run", p.to_str().unwrap()], &cache, &hf, &hub.url);
        let t = flat(&text(&out));
        assert_ne!(out.status.code(), Some(0), "{t}");
        assert!(t.contains(want), "{t}");
        assert!(t.contains("org/cs-split"), "{t}");
    }
}

// A PEFT adapter on the hub: trained by a first pipeline on a hub model (its adapter_config.json
// names the base model and the commit), served as an adapter repo, loaded by a second pipeline
// pinned to the commit `main` resolves to, and merged.
#[test]
fn an_adapter_repo_on_the_hub_is_loaded_pinned_and_merged() {
    let hub = FakeHub::start();
    let a = sha("tiny-a");
    hub.push("models", "org/tiny", &a, tiny_model_files(1));
    hub.set_main("models", "org/tiny", &a);
    let mut data = Files::new();
    data.insert("boolq.train.jsonl".into(), rows("boolq.train.jsonl", 8));
    hub.push("datasets", "org/cs-data", &sha("cs-1"), data);
    let dir = tempfile::tempdir().unwrap();
    let (cache, hf) = (dir.path().join("cache"), dir.path().join("hf"));
    let p = pipeline(dir.path(), "org/tiny");
    let first = run(&["run", p.to_str().unwrap()], &cache, &hf, &hub.url);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let ft = jobs_with(&last_log(&cache), "job_done")["ft"].clone();
    let adapter_dir = crate::support::entry_dir(&cache, &ft).join("out/adapter");
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(adapter_dir.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["base_model_name_or_path"], "org/tiny");
    assert_eq!(cfg["revision"], a.as_str(), "the commit the key pinned");
    let card = std::fs::read_to_string(adapter_dir.join("README.md")).unwrap();
    assert!(
        card.starts_with("---\nbase_model: org/tiny\nlibrary_name: peft\npipeline_tag: text-generation\ntags:\n- base_model:adapter:org/tiny\n- lora\n"),
        "PEFT's front matter: {card}"
    );

    let mut files = Files::new();
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        files.insert(f.into(), std::fs::read(adapter_dir.join(f)).unwrap());
    }
    let (l1, l2) = (sha("lora-1"), sha("lora-2"));
    hub.push("models", "org/tiny-lora", &l1, files.clone());
    hub.push("models", "org/tiny-lora", &l2, files);
    hub.set_main("models", "org/tiny-lora", &l1);
    let second = dir.path().join("second.kdl");
    std::fs::write(
        &second,
        "model \"base\" {\n    hub \"org/tiny\"\n}\n\
         adapter \"theirs\" model=\"base\" {\n    hub \"org/tiny-lora\" revision=\"main\"\n}\n\
         merge \"m\" from=\"theirs\"\n",
    )
    .unwrap();
    let s = second.to_str().unwrap();
    let o = run(&["run", s], &cache, &hf, &hub.url);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let done = jobs_with(&last_log(&cache), "job_done");
    let manifest = std::fs::read_to_string(
        crate::support::entry_dir(&cache, &done["theirs"]).join("manifest.json"),
    )
    .unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        manifest["meta"]["outputs"]["loaded_from"],
        serde_json::json!({"hub": "org/tiny-lora", "commit": l1}),
        "{manifest}"
    );
    assert!(done.contains_key("m"), "{}", text(&o));
    // Same commit: hits. The branch moves: the adapter and the merge are misses.
    let o = run(&["run", s], &cache, &hf, &hub.url);
    assert!(
        jobs_with(&last_log(&cache), "job_done").is_empty(),
        "{}",
        text(&o)
    );
    hub.set_main("models", "org/tiny-lora", &l2);
    let o = run(&["run", s], &cache, &hf, &hub.url);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let done = jobs_with(&last_log(&cache), "job_done");
    assert!(
        done.contains_key("theirs") && done.contains_key("m") && !done.contains_key("base"),
        "{done:?}"
    );
}
