//! The Hugging Face hub, through `hf-hub` 1.0's blocking client: model and dataset files at a
//! revision pinned to a commit sha (so the sha can go into a stage key), in the shared HF cache.
//!
//! Settings come from the usual environment, read once by [`HubSettings::from_env`]: `HF_ENDPOINT`
//! (default `https://huggingface.co`), the token (`HF_TOKEN`, `HF_TOKEN_PATH`, `$HF_HOME/token`,
//! resolved by hf-hub), the cache (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`), and offline mode (`HF_HUB_OFFLINE=1`: no network, the cache only;
//! a branch name resolves through the cache's `refs/<branch>` file, which [`Hub::resolve_revision`]
//! writes when it resolves one online).
//!
//! Guarantees: every file of one [`Hub::model`] call comes from the same commit; errors name the
//! repo, the revision and the file; offline mode never opens a connection.

use std::path::{Path, PathBuf};

use hf_hub::{HFClientBuilder, HFClientSync, HFError};

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("hub: repository `{repo}` not found (or private and no token: set HF_TOKEN)")]
    RepoNotFound { repo: String },
    #[error("hub: `{repo}`: revision `{revision}` not found")]
    RevisionNotFound { repo: String, revision: String },
    #[error("hub: `{repo}`@{revision}: file `{file}` not found")]
    FileNotFound {
        repo: String,
        revision: String,
        file: String,
    },
    #[error(
        "hub (offline, HF_HUB_OFFLINE=1): `{repo}`@{revision}: `{file}` is not in the cache {cache}"
    )]
    NotCached {
        repo: String,
        revision: String,
        file: String,
        cache: PathBuf,
    },
    #[error(
        "hub: `{repo}`@{revision}: access denied (gated or private: check HF_TOKEN): {message}"
    )]
    Auth {
        repo: String,
        revision: String,
        message: String,
    },
    #[error("hub: `{repo}`@{revision}: `{file}`: {message}")]
    Other {
        repo: String,
        revision: String,
        file: String,
        message: String,
    },
    #[error(
        "hub: cannot reach {endpoint} for `{repo}`: {message} (check the network or HF_ENDPOINT; HF_HUB_OFFLINE=1 works from the local HF cache)"
    )]
    Unreachable {
        endpoint: String,
        repo: String,
        message: String,
    },
    #[error("hub: `{repo}`@{revision}: {source}")]
    Split {
        repo: String,
        revision: String,
        source: crate::train::data::splits::SplitError,
    },
    #[error("hub: {0}")]
    Setup(String),
}

/// Where and how to reach the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    /// `None`: hf-hub's default (`HF_ENDPOINT` or huggingface.co).
    pub endpoint: Option<String>,
    /// `None`: hf-hub resolves `HF_TOKEN` / `HF_TOKEN_PATH` / `$HF_HOME/token`.
    pub token: Option<String>,
    pub cache_dir: PathBuf,
    pub offline: bool,
}

impl HubSettings {
    pub fn from_env() -> Self {
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| env_flag(&v));
        Self {
            endpoint: std::env::var("HF_ENDPOINT").ok().filter(|s| !s.is_empty()),
            token: None,
            cache_dir: hf_hub::resolve_cache_dir(),
            offline,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    fn plural(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }
}

/// A model repo's files at one commit, in the HF cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSnapshot {
    pub repo: String,
    pub commit: String,
    /// The snapshot directory (`<cache>/models--org--name/snapshots/<commit>`): an HF model dir.
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Optional files fetched with a model when present.
const OPTIONAL_MODEL_FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
];

pub struct Hub {
    client: HFClientSync,
    settings: HubSettings,
}

impl Hub {
    pub fn new(settings: HubSettings) -> Result<Self, HubError> {
        Self::build(settings, None)
    }

    /// `retries`: `None` for hf-hub's default retry schedule (what downloads want), `Some(0)` for
    /// one attempt per request (read-only commands that must not stall without a network).
    fn build(settings: HubSettings, retries: Option<usize>) -> Result<Self, HubError> {
        let mut b = HFClientBuilder::new().cache_dir(settings.cache_dir.clone());
        if let Some(n) = retries {
            b = b.retry_max_attempts(n);
        }
        if let Some(e) = &settings.endpoint {
            b = b.endpoint(e.clone());
        }
        if let Some(t) = &settings.token {
            b = b.token(t.clone());
        }
        let client = b.build_sync().map_err(|e| HubError::Setup(e.to_string()))?;
        Ok(Self { client, settings })
    }

    pub fn from_env() -> Result<Self, HubError> {
        Self::new(HubSettings::from_env())
    }

    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    fn repo_dir(&self, kind: RepoKind, repo: &str) -> PathBuf {
        let folder = std::iter::once(kind.plural())
            .chain(repo.split('/'))
            .collect::<Vec<_>>()
            .join("--");
        self.settings.cache_dir.join(folder)
    }

    /// The commit sha `revision` (branch, tag or sha) points at. Online: the repo info endpoint
    /// (`/api/{models,datasets}/{repo}/revision/{rev}`), and the answer is recorded in the
    /// cache's `refs/`; offline: a 40-hex sha as is, else the cache's `refs/<revision>`.
    pub fn resolve_revision(
        &self,
        kind: RepoKind,
        repo: &str,
        revision: &str,
    ) -> Result<String, HubError> {
        if is_commit(revision) {
            return Ok(revision.to_string());
        }
        let ref_path = self.repo_dir(kind, repo).join("refs").join(revision);
        if self.settings.offline {
            return std::fs::read_to_string(&ref_path)
                .map(|s| s.trim().to_string())
                .map_err(|_| HubError::NotCached {
                    repo: repo.into(),
                    revision: revision.into(),
                    file: format!("refs/{revision}"),
                    cache: self.settings.cache_dir.clone(),
                });
        }
        let (owner, name) = hf_hub::split_id(repo);
        let sha = match kind {
            RepoKind::Model => self
                .client
                .model(owner, name)
                .info()
                .revision(revision)
                .send()
                .map(|i| i.sha),
            RepoKind::Dataset => self
                .client
                .dataset(owner, name)
                .info()
                .revision(revision)
                .send()
                .map(|i| i.sha),
        }
        .map_err(|e| self.map_err(e, repo, revision, ""))?
        .filter(|s| is_commit(s))
        .ok_or_else(|| HubError::Other {
            repo: repo.into(),
            revision: revision.into(),
            file: String::new(),
            message: "the repo info has no commit sha".into(),
        })?;
        if let Some(parent) = ref_path.parent() {
            let _ = std::fs::create_dir_all(parent);
            // A missing ref only costs offline resolution of this branch later.
            let _ = std::fs::write(&ref_path, &sha);
        }
        Ok(sha)
    }

    /// One file at `commit` (a sha from [`Hub::resolve_revision`]), downloaded into the cache or
    /// found there; its path in the snapshot directory.
    pub fn file(
        &self,
        kind: RepoKind,
        repo: &str,
        commit: &str,
        file: &str,
    ) -> Result<PathBuf, HubError> {
        let (owner, name) = hf_hub::split_id(repo);
        let offline = self.settings.offline;
        let result = match kind {
            RepoKind::Model => self
                .client
                .model(owner, name)
                .download_file()
                .filename(file)
                .revision(commit)
                .local_files_only(offline)
                .send(),
            RepoKind::Dataset => self
                .client
                .dataset(owner, name)
                .download_file()
                .filename(file)
                .revision(commit)
                .local_files_only(offline)
                .send(),
        };
        result.map_err(|e| self.map_err(e, repo, commit, file))
    }

    /// Like [`Hub::file`], `Ok(None)` when the repo has no such file.
    fn optional_file(
        &self,
        kind: RepoKind,
        repo: &str,
        commit: &str,
        file: &str,
    ) -> Result<Option<PathBuf>, HubError> {
        match self.file(kind, repo, commit, file) {
            Ok(p) => Ok(Some(p)),
            Err(HubError::FileNotFound { .. } | HubError::NotCached { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A model: `config.json`, the weights (`model.safetensors.index.json` and its shards, or
    /// `model.safetensors`), the tokenizer files that exist, and `extra` named files.
    pub fn model(
        &self,
        repo: &str,
        revision: &str,
        extra: &[String],
    ) -> Result<ModelSnapshot, HubError> {
        let kind = RepoKind::Model;
        let commit = self.resolve_revision(kind, repo, revision)?;
        let mut files = vec![self.file(kind, repo, &commit, "config.json")?];
        for f in OPTIONAL_MODEL_FILES {
            files.extend(self.optional_file(kind, repo, &commit, f)?);
        }
        match self.optional_file(kind, repo, &commit, "model.safetensors.index.json")? {
            Some(index) => {
                for shard in shard_names(&index).map_err(|message| HubError::Other {
                    repo: repo.into(),
                    revision: commit.clone(),
                    file: "model.safetensors.index.json".into(),
                    message,
                })? {
                    files.push(self.file(kind, repo, &commit, &shard)?);
                }
                files.push(index);
            }
            None => files.push(self.file(kind, repo, &commit, "model.safetensors")?),
        }
        for f in extra {
            files.push(self.file(kind, repo, &commit, f)?);
        }
        let dir = self.repo_dir(kind, repo).join("snapshots").join(&commit);
        Ok(ModelSnapshot {
            repo: repo.into(),
            commit,
            dir,
            files,
        })
    }

    /// Dataset files matching `patterns` (globs over repo paths, e.g. `data/*.parquet`), at the
    /// commit `revision` resolves to. Online the file list comes from the repo info; offline from
    /// the cached snapshot.
    /// Every file of a dataset repo at `commit` (repo-relative names).
    fn dataset_listing(&self, repo: &str, commit: &str) -> Result<Vec<String>, HubError> {
        let kind = RepoKind::Dataset;
        if self.settings.offline {
            let snap = self.repo_dir(kind, repo).join("snapshots").join(commit);
            let mut names = Vec::new();
            list_relative(&snap, &snap, &mut names);
            return Ok(names);
        }
        let (owner, name) = hf_hub::split_id(repo);
        let info = self
            .client
            .dataset(owner, name)
            .info()
            .revision(commit.to_string())
            .send()
            .map_err(|e| self.map_err(e, repo, commit, ""))?;
        Ok(info
            .siblings
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.rfilename)
            .collect())
    }

    /// The files of a dataset repo matching any of `patterns` (globs over repo-relative names),
    /// downloaded; with the commit `revision` resolved to.
    pub fn dataset_files(
        &self,
        repo: &str,
        revision: &str,
        patterns: &[String],
    ) -> Result<(String, Vec<PathBuf>), HubError> {
        let kind = RepoKind::Dataset;
        let commit = self.resolve_revision(kind, repo, revision)?;
        let globs = patterns
            .iter()
            .map(|p| {
                glob::Pattern::new(p)
                    .map_err(|e| HubError::Setup(format!("dataset file pattern `{p}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut wanted: Vec<String> = self
            .dataset_listing(repo, &commit)?
            .into_iter()
            .filter(|n| globs.iter().any(|g| g.matches(n)))
            .collect();
        wanted.sort();
        if wanted.is_empty() {
            return Err(HubError::FileNotFound {
                repo: repo.into(),
                revision: commit,
                file: patterns.join(", "),
            });
        }
        let files = wanted
            .iter()
            .map(|f| self.file(kind, repo, &commit, f))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((commit, files))
    }

    /// The data files (`.jsonl`, `.json`, `.parquet`, optionally `.gz`) of one split of one
    /// configuration of a dataset repo, chosen by the `datasets` library's naming conventions
    /// ([`crate::train::data::splits`]), downloaded; with the commit `revision` resolved to.
    pub fn dataset_split(
        &self,
        repo: &str,
        revision: &str,
        split: &str,
        config: Option<&str>,
    ) -> Result<(String, Vec<PathBuf>), HubError> {
        let kind = RepoKind::Dataset;
        let commit = self.resolve_revision(kind, repo, revision)?;
        let data: Vec<String> = self
            .dataset_listing(repo, &commit)?
            .into_iter()
            .filter(|n| {
                let n = n.strip_suffix(".gz").unwrap_or(n);
                [".jsonl", ".json", ".parquet"]
                    .iter()
                    .any(|e| n.ends_with(e))
            })
            .collect();
        if data.is_empty() {
            return Err(HubError::FileNotFound {
                repo: repo.into(),
                revision: commit,
                file: "*.jsonl, *.json, *.parquet".into(),
            });
        }
        let wanted =
            crate::train::data::splits::select(&data, split, config).map_err(|source| {
                HubError::Split {
                    repo: repo.into(),
                    revision: commit.clone(),
                    source,
                }
            })?;
        let files = wanted
            .iter()
            .map(|f| self.file(kind, repo, &commit, f))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((commit, files))
    }

    fn map_err(&self, e: HFError, repo: &str, revision: &str, file: &str) -> HubError {
        let (repo, revision, file) = (repo.to_string(), revision.to_string(), file.to_string());
        // hf-hub maps every 404 of a revision-qualified request to the revision or the entry; the
        // hub's `X-Error-Code` header says when the repo itself is missing.
        let code = match &e {
            HFError::RevisionNotFound {
                context: Some(c), ..
            }
            | HFError::EntryNotFound {
                context: Some(c), ..
            } => c.error_code.clone(),
            _ => None,
        };
        if code.as_deref() == Some("RepoNotFound") {
            return HubError::RepoNotFound { repo };
        }
        match e {
            HFError::Request { source, .. } if source.is_connect() || source.is_timeout() => {
                HubError::Unreachable {
                    endpoint: self
                        .settings
                        .endpoint
                        .clone()
                        .unwrap_or_else(|| "https://huggingface.co".into()),
                    repo,
                    message: std::error::Error::source(&source)
                        .map_or_else(|| source.to_string(), |s| format!("{source}: {s}")),
                }
            }
            HFError::RepoNotFound { .. } => HubError::RepoNotFound { repo },
            HFError::RevisionNotFound { .. } => HubError::RevisionNotFound { repo, revision },
            HFError::EntryNotFound { .. } => HubError::FileNotFound {
                repo,
                revision,
                file,
            },
            HFError::LocalEntryNotFound { .. } => HubError::NotCached {
                repo,
                revision,
                file,
                cache: self.settings.cache_dir.clone(),
            },
            e @ (HFError::AuthRequired { .. } | HFError::Forbidden { .. }) => HubError::Auth {
                repo,
                revision,
                message: e.to_string(),
            },
            e => HubError::Other {
                repo,
                revision,
                file,
                message: e.to_string(),
            },
        }
    }
}

/// Resolves a hub revision (branch, tag or sha) to a commit sha: what the planner asks while it
/// keys hub sources (`crate::plan::resolve`).
pub trait HubResolver {
    /// `Ok(None)`: do not pin (key by the revision as written).
    fn commit(
        &mut self,
        kind: RepoKind,
        repo: &str,
        revision: &str,
    ) -> Result<Option<String>, HubError>;
}

/// A hub client built from the environment on first use, as the planner's [`HubResolver`]: a
/// pipeline without hub sources never touches the network or the HF cache.
#[derive(Default)]
pub struct LazyHub {
    hub: Option<Hub>,
    lenient: bool,
    /// Lenient only: the settings to build the client from (`None`: the environment's).
    settings: Option<HubSettings>,
    /// Lenient only: the hub was found unreachable, so later sources are not tried again.
    unreachable: bool,
}

impl LazyHub {
    /// Strict: a revision that cannot be resolved is an error (what `rora run` needs).
    pub fn from_env() -> Self {
        Self::default()
    }

    /// For read-only commands (`plan`, `explain`, `show-output`): a revision that cannot be
    /// resolved (no network, unknown repo) leaves that source keyed by its revision name, with a
    /// warning on stderr, instead of failing; `rora run` resolves it or says why not. Requests
    /// are not retried, and once the hub is unreachable no later source tries it again, so these
    /// commands answer at once without a network.
    pub fn lenient_from_env() -> Self {
        Self {
            lenient: true,
            ..Self::default()
        }
    }

    /// [`LazyHub::lenient_from_env`] with explicit settings.
    pub fn lenient_with(settings: HubSettings) -> Self {
        Self {
            lenient: true,
            settings: Some(settings),
            ..Self::default()
        }
    }

    fn resolve(&mut self, kind: RepoKind, repo: &str, revision: &str) -> Result<String, HubError> {
        let hub = match &mut self.hub {
            Some(h) => h,
            None if self.lenient => {
                let settings = self.settings.clone().unwrap_or_else(HubSettings::from_env);
                self.hub.insert(Hub::build(settings, Some(0))?)
            }
            None => self.hub.insert(Hub::from_env()?),
        };
        hub.resolve_revision(kind, repo, revision)
    }
}

impl HubResolver for LazyHub {
    fn commit(
        &mut self,
        kind: RepoKind,
        repo: &str,
        revision: &str,
    ) -> Result<Option<String>, HubError> {
        if self.lenient && self.unreachable {
            eprintln!(
                "warning: `{repo}`@{revision} is keyed by its revision name (hub unreachable)"
            );
            return Ok(None);
        }
        match self.resolve(kind, repo, revision) {
            Ok(commit) => Ok(Some(commit)),
            Err(e) if self.lenient => {
                self.unreachable = matches!(e, HubError::Unreachable { .. });
                eprintln!(
                    "warning: {e}\n  `{repo}`@{revision} is keyed by its revision name here, not by its commit: `rora run` resolves it"
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// huggingface_hub's truthy values for boolean environment variables.
fn env_flag(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The distinct shard files of a safetensors index, sorted.
fn shard_names(index: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(index).map_err(|e| e.to_string())?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or("no `weight_map` object")?;
    let mut names = map
        .iter()
        .map(|(tensor, f)| {
            f.as_str()
                .map(str::to_string)
                .ok_or(format!("weight_map `{tensor}`: not a string"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    names.sort();
    names.dedup();
    if let Some(bad) = names
        .iter()
        .find(|n| n.contains("..") || n.starts_with('/'))
    {
        return Err(format!("shard name `{bad}` escapes the repo"));
    }
    Ok(names)
}

fn list_relative(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            list_relative(root, &p, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[cfg(test)]
mod tests;
