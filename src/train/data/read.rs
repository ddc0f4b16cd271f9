//! Readers: resolve file patterns, then stream each file's records as JSON objects, one at a
//! time (a 170k-row file is never held twice: JSONL is read line by line, JSON arrays element by
//! element through serde's sequence visitor, Parquet record batch by record batch).
//!
//! Formats come from the extension: `.jsonl` / `.ndjson`, `.json` (an array of objects), either
//! optionally `.gz`; `.parquet`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::de::{Deserializer as _, Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{DataError, Location};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    Jsonl,
    Json,
    Parquet,
}

impl FileFormat {
    /// The format named by the file's extension (`.gz` looked through).
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            Some(FileFormat::Jsonl)
        } else if name.ends_with(".json") {
            Some(FileFormat::Json)
        } else if name.ends_with(".parquet") {
            Some(FileFormat::Parquet)
        } else {
            None
        }
    }
}

/// Expands `patterns` (paths or globs, relative ones resolved against `base_dir`) into a sorted,
/// de-duplicated list of files. A pattern that matches nothing is an error.
pub fn resolve_files(patterns: &[String], base_dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for pattern in patterns {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base_dir.join(pattern)
        };
        let full_str = full.to_string_lossy().into_owned();
        let perr = |message: String| DataError::Pattern {
            pattern: pattern.clone(),
            message,
        };
        let mut matched: Vec<PathBuf> = if pattern.contains(['*', '?', '[']) {
            glob::glob(&full_str)
                .map_err(|e| perr(e.to_string()))?
                .map(|r| r.map_err(|e| perr(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|p| p.is_file())
                .collect()
        } else if full.is_file() {
            vec![full]
        } else {
            vec![]
        };
        if matched.is_empty() {
            return Err(perr(format!("matched no files (looked for {full_str})")));
        }
        matched.sort();
        out.extend(matched);
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

pub use super::error::RecordSink;

/// Streams every record of `path` into `sink`.
pub fn for_each_record(
    path: &Path,
    format: Option<FileFormat>,
    sink: &mut RecordSink<'_>,
) -> Result<(), DataError> {
    let format = match format.or_else(|| FileFormat::from_path(path)) {
        Some(f) => f,
        None => {
            return Err(DataError::UnknownFormat {
                path: path.to_path_buf(),
            });
        }
    };
    match format {
        FileFormat::Jsonl => read_jsonl(path, open(path)?, sink),
        // A `.json` file may hold one array or, as many hub datasets do, JSON Lines.
        FileFormat::Json => {
            let mut reader = open(path)?;
            match first_byte(&mut reader).map_err(|e| DataError::io(path, e))? {
                Some(b'[') | None => read_json_array(path, reader, sink),
                Some(_) => read_jsonl(path, reader, sink),
            }
        }
        FileFormat::Parquet => super::parquet::read_parquet(path, sink),
    }
}

/// Opens a file, decompressing `.gz` on the fly.
fn open(path: &Path) -> Result<Box<dyn BufRead>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let mut reader: Box<dyn BufRead> = if gz {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    // A UTF-8 byte-order mark is not JSON; skip it.
    let buf = reader.fill_buf().map_err(|e| DataError::io(path, e))?;
    if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
        reader.consume(3);
    }
    Ok(reader)
}

/// The first non-whitespace byte, not consumed (leading whitespace is consumed only when it
/// fills a whole buffer).
fn first_byte(reader: &mut Box<dyn BufRead>) -> std::io::Result<Option<u8>> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        let skip = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if skip < buf.len() {
            return Ok(Some(buf[skip]));
        }
        reader.consume(skip);
    }
}

fn read_jsonl(
    path: &Path,
    mut reader: Box<dyn BufRead>,
    sink: &mut RecordSink<'_>,
) -> Result<(), DataError> {
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let location = Location::Line(line);
        let value: Value = serde_json::from_slice(&buf).map_err(|e| DataError::Json {
            path: path.to_path_buf(),
            location,
            message: e.to_string(),
        })?;
        sink(location, value)?;
    }
}

fn read_json_array(
    path: &Path,
    reader: Box<dyn BufRead>,
    sink: &mut RecordSink<'_>,
) -> Result<(), DataError> {
    struct Elements<'s, 'a> {
        sink: &'s mut RecordSink<'a>,
        failure: &'s mut Option<DataError>,
    }
    impl<'de> Visitor<'de> for Elements<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut row = 0;
            while let Some(value) = seq.next_element::<Value>()? {
                if let Err(e) = (self.sink)(Location::Row(row), value) {
                    *self.failure = Some(e);
                    return Err(A::Error::custom("stopped"));
                }
                row += 1;
            }
            Ok(())
        }
    }
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = de
        .deserialize_seq(Elements {
            sink,
            failure: &mut failure,
        })
        .and_then(|()| de.end());
    if let Some(e) = failure {
        return Err(e);
    }
    result.map_err(|e| DataError::Json {
        path: path.to_path_buf(),
        location: Location::Line(e.line()),
        message: e.to_string(),
    })
}

/// Reads every record of a file into memory (for tests and small files).
pub fn read_records(path: &Path) -> Result<Vec<(Location, Value)>, DataError> {
    let mut out = Vec::new();
    for_each_record(path, None, &mut |loc, v| {
        out.push((loc, v));
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn jsonl_gz_and_json_array_give_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [r#"{"a": 1}"#, r#"{"a": 2}"#];
        std::fs::write(
            dir.path().join("x.jsonl"),
            format!("{}\n\n{}\n", rows[0], rows[1]),
        )
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(
            File::create(dir.path().join("x.jsonl.gz")).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(format!("{}\n{}", rows[0], rows[1]).as_bytes())
            .unwrap();
        gz.finish().unwrap();
        std::fs::write(
            dir.path().join("y.json"),
            format!("[{}, {}]", rows[0], rows[1]),
        )
        .unwrap();
        // JSON Lines under a .json name, behind a byte-order mark.
        let z = format!("\u{feff}{}\n{}\n", rows[0], rows[1]);
        std::fs::write(dir.path().join("z.json"), z).unwrap();
        let plain = read_records(&dir.path().join("x.jsonl")).unwrap();
        assert_eq!(plain[1].0, Location::Line(3), "blank lines still count");
        let gz = read_records(&dir.path().join("x.jsonl.gz")).unwrap();
        let arr = read_records(&dir.path().join("y.json")).unwrap();
        let values = |v: &[(Location, Value)]| {
            v.iter()
                .map(|(_, v)| v["a"].as_i64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(values(&plain), [1, 2]);
        assert_eq!(values(&gz), [1, 2]);
        assert_eq!(values(&arr), [1, 2]);
        let lines = read_records(&dir.path().join("z.json")).unwrap();
        assert_eq!(values(&lines), [1, 2]);
        assert_eq!(lines[1].0, Location::Line(2));
        assert_eq!(arr[1].0, Location::Row(1));
    }

    #[test]
    fn bad_json_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.jsonl");
        std::fs::write(&p, "{\"a\": 1}\n{\"a\": \n").unwrap();
        let e = read_records(&p).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl: line 2: invalid JSON"), "{e}");
        let p = dir.path().join("bad.json");
        std::fs::write(&p, "[{\"a\": 1},\n {\"a\" 2}]").unwrap();
        let e = read_records(&p).unwrap_err().to_string();
        assert!(e.contains("bad.json: line 2: invalid JSON"), "{e}");
        let e = read_records(&dir.path().join("x.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported file type"), "{e}");
    }

    #[test]
    fn globs_resolve_sorted_relative_to_base() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.train.jsonl", "a.train.jsonl", "a.eval.jsonl"] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let files = resolve_files(
            &["*.train.jsonl".into(), "a.train.jsonl".into()],
            dir.path(),
        )
        .unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.train.jsonl", "b.train.jsonl"]);
        let e = resolve_files(&["*.parquet".into()], dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`*.parquet`: matched no files"), "{e}");
    }
}
