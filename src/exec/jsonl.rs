//! The JSONL event log: one JSON object per event, `{"t": seconds since the run started,
//! "event": "...", ...}`, flushed per line so a killed run keeps its log up to the kill.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::error::ExecError;
use super::events::{Event, Reporter};

pub struct JsonlReporter {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
    start: Instant,
}

#[derive(Serialize)]
struct Line<'a> {
    t: f64,
    #[serde(flatten)]
    event: &'a Event,
}

impl JsonlReporter {
    /// A new log `<unix-time>-<pid>.jsonl` in `dir` (created if needed), e.g. the cache's `runs/`.
    pub fn create_in(dir: &Path) -> Result<JsonlReporter, ExecError> {
        let err = |source| ExecError::Log {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let path = dir.join(format!("{secs}-{}.jsonl", std::process::id()));
        let file = File::create(&path).map_err(|source| ExecError::Log {
            path: path.clone(),
            source,
        })?;
        Ok(JsonlReporter {
            path,
            file: Mutex::new(BufWriter::new(file)),
            start: Instant::now(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Reporter for JsonlReporter {
    fn event(&self, event: &Event) {
        let line = Line {
            t: self.start.elapsed().as_secs_f64(),
            event,
        };
        let Ok(text) = serde_json::to_string(&line) else {
            return;
        };
        if let Ok(mut f) = self.file.lock() {
            // A log write failure must not fail the run; the console still reports.
            let _ = writeln!(f, "{text}").and_then(|()| f.flush());
        }
    }
}
