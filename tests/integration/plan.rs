//! Planning: sweep expansion and sharing, dependencies, golden keys, order resistance.

use rora::check::check_bytes;
use rora::plan::{DigestMemo, Plan, plan};
use rora::stages::adapter::AdapterParams;

const SWEEP: &str = r#"
sweep rank 4 8 16
sweep scaling "lora" "rora"
model "m" {
    random layers=2 hidden=64 heads=4 kv-heads=2 ffn=128
}
data "d" {
    hub "org/commonsense"
    max-len 128
}
adapter "a" model="m" {
    scaling (sweep)"scaling"
    rank (sweep)"rank"
    alpha 16
    targets "q_proj" "v_proj"
}
train "t" adapter="a" data="d" {
    steps 10
    lr 1e-3
}
merge "mg" from="t"
eval "e" model="mg" {
    tasks "boolq"
    dir "tests/fixtures/eval"
}
report "r" from="e" {
    table
}
"#;

fn planned(src: &str) -> Plan {
    let r = check_bytes("p.kdl", src.as_bytes());
    assert!(!r.has_errors(), "{:?}", r.diagnostics);
    plan(&r.pipeline.unwrap(), &mut DigestMemo::new()).unwrap()
}

fn keys(p: &Plan) -> Vec<(String, String)> {
    p.jobs
        .iter()
        .map(|j| (j.label.clone(), j.key.0.clone()))
        .collect()
}

#[test]
fn sweeps_expand_and_unswept_stages_are_shared() {
    let p = planned(SWEEP);
    let count = |s: &str| p.stage_jobs(s).count();
    assert_eq!(
        [
            count("m"),
            count("d"),
            count("a"),
            count("t"),
            count("mg"),
            count("e"),
            count("r"),
            count("d.tokens.m")
        ],
        [1, 1, 6, 6, 6, 6, 1, 1]
    );
    // the rank sweep tokenizes once: one planned `tokens` job shared by the six trains
    assert_eq!(p.jobs.len(), 28);
    for j in &p.jobs {
        assert!(j.deps.iter().all(|d| d.job.0 < j.id.0), "deps come first");
    }
    let t = p.find("t@scaling=rora,rank=16").unwrap();
    assert_eq!(p.find("t@rank=16,scaling=rora").unwrap().id, t.id);
    let roles: Vec<_> = t
        .deps
        .iter()
        .map(|d| (d.role.as_str(), p.job(d.job).label.as_str()))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("adapter", "a@rank=16,scaling=rora"),
            ("data", "d"),
            ("tokens", "d.tokens.m")
        ]
    );
    let tokens = p.find("d.tokens.m").unwrap();
    assert_eq!(tokens.kind, rora::schema::Kind::Tokens);
    assert!(tokens.id < t.id);
    assert_eq!(
        t.fingerprint.upstream["tokens"],
        vec![tokens.key.0.clone()],
        "a train key follows its tokens key"
    );
    // Before tokenization was planned, runners stored it under a key of their own; such entries
    // are never read as a planned tokens job (a different derivation, so a different key).
    let legacy = blake3::hash(
        format!(
            "rora-tokenize-v1\n{}\n{}",
            p.find("d").unwrap().key,
            p.find("m").unwrap().key
        )
        .as_bytes(),
    );
    assert_ne!(tokens.key.0, legacy.to_hex().as_str());
    assert_eq!(tokens.fingerprint.kind, "tokens");
    assert_eq!(p.find("r").unwrap().deps.len(), 6);
    // Effective scale: rora alpha/sqrt(r) = 16/4 = 4 at r = 16; lora alpha/r = 1.
    let scale = |l: &str| {
        p.find(l)
            .unwrap()
            .params
            .get::<AdapterParams>()
            .expect("adapter params")
            .settings()
            .expect("fresh settings")
            .scale()
    };
    assert_eq!(
        (
            scale("a@rank=16,scaling=rora"),
            scale("a@rank=16,scaling=lora")
        ),
        (4.0, 1.0)
    );
    // every job has its own key
    let mut k: Vec<_> = p.jobs.iter().map(|j| j.key.0.clone()).collect();
    k.sort();
    k.dedup();
    assert_eq!(k.len(), 28);
}

#[test]
fn keys_ignore_order_formatting_and_unkeyed_options() {
    let base = planned(SWEEP);
    let shuffled = SWEEP
        .replace("alpha 16\n", "alpha 16.0\n")
        .replace(
            "    random layers=2 hidden=64 heads=4 kv-heads=2 ffn=128\n",
            "    device \"cpu\"\n    random ffn=128 kv-heads=2 heads=4 hidden=64 layers=2\n",
        )
        .replace(
            "    steps 10\n    lr 1e-3\n",
            "    lr 0.001\n    steps 10\n    optimizer \"adamw\" beta2=0.999\n",
        );
    assert_ne!(shuffled, SWEEP);
    assert_eq!(keys(&planned(&shuffled)), keys(&base));
    // Stage order in the file does not matter either (keys by label).
    let moved = format!(
        "{}\n{}",
        &SWEEP[SWEEP.find("merge").unwrap()..],
        &SWEEP[..SWEEP.find("merge").unwrap()]
    );
    let mut a = keys(&planned(&moved));
    let mut b = keys(&base);
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn a_changed_option_changes_its_job_and_everything_downstream_only() {
    let base = planned(SWEEP);
    let changed = planned(&SWEEP.replace("lr 1e-3", "lr 2e-3"));
    for (j, c) in base.jobs.iter().zip(&changed.jobs) {
        let downstream = ["t", "mg", "e", "r"].contains(&j.stage.as_str());
        assert_eq!(j.key != c.key, downstream, "{}", j.label);
    }
}

// A prop added after keys were published (`train-on=` of the data `template`) moves no key at its
// default, written or omitted; another value is keyed.
#[test]
fn a_later_prop_at_its_default_keeps_the_keys() {
    let key = |src: &str| planned(src).find("d").unwrap().key.short().to_string();
    let base = key(SWEEP);
    assert_eq!(base, GOLDEN[1].1);
    let with = |t: &str| {
        SWEEP.replace(
            "    max-len 128",
            &format!("    max-len 128\n    template {t}"),
        )
    };
    assert_eq!(key(&with("\"llm-adapters\"")), base);
    let model = key(&with("\"model\""));
    assert_ne!(model, base);
    assert_eq!(key(&with("\"model\" train-on=\"assistant\"")), model);
    assert_ne!(key(&with("\"model\" train-on=\"all\"")), model);
}

/// Golden keys pin the derivation. They were recorded from this implementation; if one changes,
/// the derivation changed: bump rora::plan::KEY_FORMAT_VERSION and update them together. (When a
/// job's fingerprint gains content instead, e.g. the train job's `tokens` input, keys of that job
/// and what follows change by themselves and no bump is needed: old entries are never found.
/// The report's key also moved when the eval and report kinds' versions went to 2 with task
/// files and lm-eval results: a kind version is part of the fingerprint.)
#[test]
fn golden_keys() {
    let p = planned(SWEEP);
    let got: Vec<(&str, &str)> = [
        "m",
        "d",
        "a@rank=4,scaling=lora",
        "d.tokens.m",
        "t@rank=16,scaling=rora",
        "r",
    ]
    .iter()
    .map(|l| (*l, p.find(l).unwrap().key.short()))
    .collect();
    let golden = GOLDEN;
    assert_eq!(got, golden, "golden keys changed");
    let fp = serde_json::to_string(&p.find("m").unwrap().fingerprint).unwrap();
    assert_eq!(fp, GOLDEN_MODEL_FINGERPRINT);
}

const GOLDEN: [(&str, &str); 6] = [
    ("m", "61431131449d"),
    ("d", "c7a315a34e43"),
    ("a@rank=4,scaling=lora", "88bf7c76331b"),
    ("d.tokens.m", "1a12c0745f31"),
    ("t@rank=16,scaling=rora", "55b6ccc21b96"),
    ("r", "fc8bd6df5042"),
];
const GOLDEN_MODEL_FINGERPRINT: &str = r#"{"key_format_version":1,"kind":"model","kind_version":1,"params":{"dtype":"f32","random":{"args":[],"ffn":128,"heads":4,"hidden":64,"kv-heads":2,"layers":2,"seed":0}},"upstream":{},"inputs":{},"seed":null}"#;

#[test]
fn file_inputs_are_content_digests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("boolq.train.jsonl"),
        "{\"id\":\"1\",\"question\":\"q\",\"choices\":[\"true\",\"false\"],\"label\":0}\n",
    )
    .unwrap();
    let src = "data \"d\" {\n    files \"*.train.jsonl\"\n}\n";
    let path = dir.path().join("p.kdl");
    let key = || {
        let r = check_bytes(&path, src.as_bytes());
        assert!(!r.has_errors(), "{:?}", r.diagnostics);
        plan(&r.pipeline.unwrap(), &mut DigestMemo::new())
            .unwrap()
            .jobs[0]
            .key
            .clone()
    };
    let k1 = key();
    std::fs::write(
        dir.path().join("boolq.train.jsonl"),
        "{\"id\":\"2\",\"question\":\"q\",\"choices\":[\"true\",\"false\"],\"label\":1}\n",
    )
    .unwrap();
    assert_ne!(key(), k1);
}
