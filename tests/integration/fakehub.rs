//! A local HTTP server in the hub's URL layout, for running `rora` against "the hub" without a
//! network: `/api/{models,datasets}/{repo}/revision/{rev}` (repo info with the commit `sha` and
//! the file list), `/{repo}/resolve/{rev}/{file}` and `/datasets/{repo}/resolve/{rev}/{file}`
//! (file bytes with the `ETag` and `X-Repo-Commit` headers hf-hub reads). Each repo has commits
//! (sha -> files) and a `main` branch that a test can move. Errors carry the hub's `X-Error-Code`
//! (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`). The server stops when dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub type Files = BTreeMap<String, Vec<u8>>;

#[derive(Default)]
struct Repo {
    /// Commit the `main` branch points at.
    main: String,
    commits: BTreeMap<String, Files>,
}

/// `(api kind "models"/"datasets", repo id)` -> repo.
type Repos = BTreeMap<(String, String), Repo>;

pub struct FakeHub {
    pub url: String,
    repos: Arc<Mutex<Repos>>,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A 40-hex commit sha made from a label.
pub fn sha(label: &str) -> String {
    blake3::hash(label.as_bytes()).to_hex()[..40].to_string()
}

impl FakeHub {
    pub fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let repos: Arc<Mutex<Repos>> = Arc::default();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (repos2, log2, stop2) = (repos.clone(), log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &repos2, &log2),
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FakeHub {
            url,
            repos,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// Add commit `commit` with `files` to a repo (`kind`: "models" or "datasets"), and point
    /// `main` at it.
    pub fn push(&self, kind: &str, repo: &str, commit: &str, files: Files) {
        let mut repos = self.repos.lock().unwrap();
        let r = repos.entry((kind.into(), repo.into())).or_default();
        r.commits.insert(commit.into(), files);
        r.main = commit.into();
    }

    /// Move `main` to an existing commit.
    pub fn set_main(&self, kind: &str, repo: &str, commit: &str) {
        let mut repos = self.repos.lock().unwrap();
        let r = repos.get_mut(&(kind.into(), repo.into())).unwrap();
        assert!(r.commits.contains_key(commit));
        r.main = commit.into();
    }

    /// Requests served so far (`GET /path`).
    pub fn requests(&self) -> Vec<String> {
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

fn serve(mut stream: TcpStream, repos: &Mutex<Repos>, log: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).map(|n| n == 0).unwrap_or(true) || h == "\r\n" {
            break;
        }
    }
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    log.lock().unwrap().push(format!("{method} {path}"));
    let (status, headers, body) = route(&path, &repos.lock().unwrap());
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

type Response = (u16, Vec<(String, String)>, Vec<u8>);

fn not_found(code: &str) -> Response {
    (
        404,
        vec![("X-Error-Code".to_string(), code.to_string())],
        format!("{{\"error\":\"{code}\"}}").into_bytes(),
    )
}

fn route(path: &str, repos: &Repos) -> Response {
    for ((kind, id), repo) in repos {
        let commit_of = |rev: &str| -> Option<String> {
            if rev == "main" {
                Some(repo.main.clone())
            } else {
                repo.commits.contains_key(rev).then(|| rev.to_string())
            }
        };
        if let Some(rev) = path.strip_prefix(&format!("/api/{kind}/{id}/revision/")) {
            let Some(commit) = commit_of(rev) else {
                return not_found("RevisionNotFound");
            };
            let siblings: Vec<_> = repo.commits[&commit]
                .keys()
                .map(|f| serde_json::json!({ "rfilename": f }))
                .collect();
            let body = serde_json::json!({"id": id, "sha": commit, "siblings": siblings});
            return (
                200,
                vec![("Content-Type".into(), "application/json".into())],
                body.to_string().into_bytes(),
            );
        }
        let prefix = if kind == "models" {
            format!("/{id}/resolve/")
        } else {
            format!("/{kind}/{id}/resolve/")
        };
        if let Some(rest) = path.strip_prefix(&prefix) {
            let (rev, file) = rest.split_once('/').unwrap_or((rest, ""));
            let Some(commit) = commit_of(rev) else {
                return not_found("RevisionNotFound");
            };
            let header = ("X-Repo-Commit".to_string(), commit.clone());
            return match repo.commits[&commit].get(file) {
                Some(bytes) => {
                    let etag = format!("\"{}\"", blake3::hash(bytes).to_hex());
                    (200, vec![("ETag".into(), etag), header], bytes.clone())
                }
                None => {
                    let (code, mut h, body) = not_found("EntryNotFound");
                    h.push(header);
                    (code, h, body)
                }
            };
        }
    }
    not_found("RepoNotFound")
}

/// The files of a tiny random LLaMA saved as an HF model dir (config.json, model.safetensors,
/// tokenizer files), as a hub repo would hold them. `seed` changes the weights.
pub fn tiny_model_files(seed: u64) -> Files {
    use rora::model::{LoadOptions, ModelSource, RandomSpec, load};
    let opts = LoadOptions {
        dtype: candle_core::DType::F32,
        device: candle_core::Device::Cpu,
    };
    let m = load(
        &ModelSource::Random(RandomSpec::uniform(32, 1, 2, 1, 64, seed)),
        &opts,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    m.save_hf_dir(dir.path()).unwrap();
    let mut files = Files::new();
    for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
        if e.path().is_file() {
            files.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }
    assert!(files.contains_key("config.json") && files.contains_key("model.safetensors"));
    files
}
