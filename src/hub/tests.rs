//! End-to-end tests of the hub client against a local HTTP server that serves a tiny model and a
//! dataset in the hub's URL layout (`/{repo}/resolve/{rev}/{file}`, `/datasets/{repo}/resolve/...`,
//! `/api/{models,datasets}/{repo}/revision/{rev}`) with the headers hf-hub reads (ETag,
//! X-Repo-Commit, Content-Length). No external network; the server thread stops after the test.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

struct FakeHub {
    url: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// (api kind "models"/"datasets", repo id, files).
type Repo = (&'static str, &'static str, BTreeMap<String, Vec<u8>>);

impl FakeHub {
    /// `repos`: (api kind "models"/"datasets", repo id, files).
    fn start(repos: Vec<Repo>) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop2, log2) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &repos, &log2),
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FakeHub {
            url,
            stop,
            log,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, repos: &[Repo], log: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let mut auth = String::from("-");
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).map(|n| n == 0).unwrap_or(true) || h == "\r\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            auth = value.trim().to_string();
        }
    }
    let mut parts = first.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    log.lock()
        .unwrap()
        .push(format!("{method} {path} auth={auth}"));
    let (status, headers, body) = route(&path, repos);
    let reason = if status == 200 { "OK" } else { "Not Found" };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(&body);
    }
    let _ = stream.flush();
}

fn route(path: &str, repos: &[Repo]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let not_found = |code: &str| {
        (
            404,
            vec![("X-Error-Code".to_string(), code.to_string())],
            format!("{{\"error\":\"{code}\"}}").into_bytes(),
        )
    };
    for (kind, repo, files) in repos {
        let api = format!("/api/{kind}/{repo}/revision/");
        if let Some(rev) = path.strip_prefix(&api) {
            if rev != "main" && rev != SHA {
                return not_found("RevisionNotFound");
            }
            let siblings: Vec<_> = files
                .keys()
                .map(|f| serde_json::json!({"rfilename": f}))
                .collect();
            let body = serde_json::json!({"id": repo, "sha": SHA, "siblings": siblings});
            return (
                200,
                vec![("Content-Type".into(), "application/json".into())],
                body.to_string().into_bytes(),
            );
        }
        let prefix = if *kind == "models" {
            format!("/{repo}/resolve/")
        } else {
            format!("/{kind}/{repo}/resolve/")
        };
        if let Some(rest) = path.strip_prefix(&prefix) {
            let (rev, file) = rest.split_once('/').unwrap_or((rest, ""));
            if rev != "main" && rev != SHA {
                return not_found("RevisionNotFound");
            }
            let commit = ("X-Repo-Commit".to_string(), SHA.to_string());
            return match files.get(file) {
                Some(bytes) => {
                    let etag = format!("\"{}\"", blake3::hash(bytes).to_hex());
                    (200, vec![("ETag".into(), etag), commit], bytes.clone())
                }
                None => {
                    let (code, mut h, body) = not_found("EntryNotFound");
                    h.push(commit);
                    (code, h, body)
                }
            };
        }
    }
    not_found("RepoNotFound")
}

fn tiny_model() -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert(
        "config.json".into(),
        br#"{"hidden_size": 64, "num_hidden_layers": 2}"#.to_vec(),
    );
    files.insert("tokenizer.json".into(), br#"{"version": "1.0"}"#.to_vec());
    files.insert(
        "model.safetensors.index.json".into(),
        br#"{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}"#.to_vec(),
    );
    files.insert("model-00001-of-00002.safetensors".into(), vec![1u8; 300]);
    files.insert("model-00002-of-00002.safetensors".into(), vec![2u8; 200]);
    files
}

fn settings(url: &str, cache: &Path, offline: bool) -> HubSettings {
    HubSettings {
        endpoint: Some(url.to_string()),
        token: Some("hf_test".into()),
        cache_dir: cache.to_path_buf(),
        offline,
    }
}

#[test]
fn downloads_a_sharded_model_pinned_to_a_commit_then_serves_it_offline() {
    let server = FakeHub::start(vec![("models", "org/tiny", tiny_model())]);
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(settings(&server.url, cache.path(), false)).unwrap();
    let snap = hub.model("org/tiny", "main", &[]).unwrap();
    assert_eq!(snap.commit, SHA);
    assert_eq!(
        snap.dir,
        cache.path().join("models--org--tiny/snapshots").join(SHA)
    );
    let names: Vec<_> = snap
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "config.json",
            "tokenizer.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json"
        ]
    );
    assert_eq!(
        std::fs::read(snap.dir.join("model-00002-of-00002.safetensors")).unwrap(),
        vec![2u8; 200]
    );
    let reqs = server.requests();
    assert!(
        reqs.contains(&"GET /api/models/org/tiny/revision/main auth=Bearer hf_test".to_string()),
        "{reqs:?}"
    );
    // The token goes with every request.
    assert!(
        reqs.iter().all(|r| r.ends_with("auth=Bearer hf_test")),
        "{reqs:?}"
    );
    // Every file request is pinned to the commit, not the branch.
    assert!(
        reqs.iter()
            .filter(|r| r.contains("/resolve/"))
            .all(|r| r.contains(SHA)),
        "{reqs:?}"
    );

    // Offline: the server is gone; the branch resolves through the cache's refs and files come
    // from the cache.
    drop(server);
    let offline = Hub::new(settings("http://127.0.0.1:9", cache.path(), true)).unwrap();
    let again = offline.model("org/tiny", "main", &[]).unwrap();
    assert_eq!(again, snap);
    let e = offline.model("org/tiny", "v2", &[]).unwrap_err();
    assert!(matches!(e, HubError::NotCached { .. }), "{e}");
    assert!(e.to_string().contains("HF_HUB_OFFLINE=1"), "{e}");
}

#[test]
fn missing_file_repo_and_revision_give_clear_errors() {
    let mut single = BTreeMap::new();
    single.insert("config.json".to_string(), b"{}".to_vec());
    single.insert("model.safetensors".to_string(), vec![7u8; 10]);
    let server = FakeHub::start(vec![("models", "org/single", single)]);
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(settings(&server.url, cache.path(), false)).unwrap();
    // No index: falls back to model.safetensors; absent optional files are skipped.
    let snap = hub.model("org/single", SHA, &[]).unwrap();
    assert_eq!(snap.files.len(), 2);
    let e = hub
        .file(RepoKind::Model, "org/single", SHA, "nope.bin")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("hub: `org/single`@{SHA}: file `nope.bin` not found")
    );
    let e = hub.model("org/missing", "main", &[]).unwrap_err();
    assert!(matches!(e, HubError::RepoNotFound { .. }), "{e}");
    let e = hub
        .resolve_revision(RepoKind::Model, "org/single", "nobranch")
        .unwrap_err();
    assert!(matches!(e, HubError::RevisionNotFound { .. }), "{e}");
}

#[test]
fn dataset_files_by_glob() {
    let mut ds = BTreeMap::new();
    ds.insert(
        "data/train.jsonl".to_string(),
        b"{\"text\": \"a\"}\n".to_vec(),
    );
    ds.insert(
        "data/test.jsonl".to_string(),
        b"{\"text\": \"b\"}\n".to_vec(),
    );
    ds.insert("README.md".to_string(), b"# ds".to_vec());
    let server = FakeHub::start(vec![("datasets", "org/ds", ds)]);
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(settings(&server.url, cache.path(), false)).unwrap();
    let (commit, files) = hub
        .dataset_files("org/ds", "main", &["data/*.jsonl".into()])
        .unwrap();
    assert_eq!(commit, SHA);
    let rel: Vec<_> = files
        .iter()
        .map(|p| p.strip_prefix(cache.path()).unwrap().to_path_buf())
        .collect();
    let base = PathBuf::from("datasets--org--ds/snapshots").join(SHA);
    assert_eq!(
        rel,
        [base.join("data/test.jsonl"), base.join("data/train.jsonl")]
    );
    drop(server);
    let offline = Hub::new(settings("http://127.0.0.1:9", cache.path(), true)).unwrap();
    let (_, again) = offline
        .dataset_files("org/ds", "main", &["data/train*".into()])
        .unwrap();
    assert_eq!(again, files[1..]);
}

#[test]
fn offline_flag_and_commit_shapes() {
    for v in ["1", "true", "YES", " on "] {
        assert!(env_flag(v), "{v}");
    }
    for v in ["0", "", "false", "off"] {
        assert!(!env_flag(v), "{v}");
    }
    assert!(is_commit(SHA));
    assert!(!is_commit("main"));
    assert!(!is_commit(&SHA[1..]));
}

#[test]
fn shard_names_are_deduplicated_and_must_stay_inside_the_repo() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("index.json");
    std::fs::write(
        &p,
        r#"{"weight_map": {"a": "s2.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}}"#,
    )
    .unwrap();
    assert_eq!(
        shard_names(&p).unwrap(),
        ["s1.safetensors", "s2.safetensors"]
    );
    std::fs::write(&p, r#"{"weight_map": {"a": "../evil"}}"#).unwrap();
    assert!(shard_names(&p).unwrap_err().contains("escapes the repo"));
    std::fs::write(&p, r#"{"metadata": {}}"#).unwrap();
    assert!(shard_names(&p).unwrap_err().contains("weight_map"));
}

#[test]
fn lenient_resolver_tries_an_unreachable_hub_once() {
    use crate::plan::HubResolver;
    let cache = tempfile::tempdir().unwrap();
    // a closed port: the first source finds the hub unreachable (one attempt, no retries) ...
    let mut lazy = LazyHub::lenient_with(settings("http://127.0.0.1:9", cache.path(), false));
    assert_eq!(lazy.commit(RepoKind::Model, "org/a", "main").unwrap(), None);
    assert!(lazy.unreachable);
    // ... and later sources are keyed by their revision names without trying again
    assert!(lazy.hub.is_some());
    lazy.hub = None;
    assert_eq!(
        lazy.commit(RepoKind::Dataset, "org/b", "main").unwrap(),
        None
    );
    assert!(lazy.hub.is_none(), "the hub was contacted again");

    // a reachable hub: a missing repo is a warning for that source only, the next resolves
    let server = FakeHub::start(vec![("models", "org/tiny", tiny_model())]);
    let mut lazy = LazyHub::lenient_with(settings(&server.url, cache.path(), false));
    assert_eq!(
        lazy.commit(RepoKind::Model, "org/missing", "main").unwrap(),
        None
    );
    assert!(!lazy.unreachable);
    assert_eq!(
        lazy.commit(RepoKind::Model, "org/tiny", "main").unwrap(),
        Some(SHA.to_string())
    );
}
