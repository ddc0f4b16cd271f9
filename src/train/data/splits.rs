//! Which data files of a hub dataset repo make one split of one configuration, by the file-name
//! conventions of the `datasets` library (its default `data_files` patterns), so that
//! `hub "org/ds" split="test" config="en"` reads what `load_dataset("org/ds", "en", split="test")`
//! reads for repos laid out by convention:
//!
//! - configuration: with `config`, only files under a top-level folder of that name
//!   (`en/train.jsonl`, `en/test/0000.parquet`, the hub's parquet conversion `en/train/...`); a
//!   missing folder is an error naming the folders there are. Without it, every file.
//! - split: a file belongs to a split when a word of its path (words are split at `/ - _ . space`
//!   and digits) names it: `train`/`training`; `validation`/`valid`/`val`/`dev`;
//!   `test`/`testing`/`eval`/`evaluation`; any other split by its own name. A repo whose files
//!   name no split at all is one `train` split (as `datasets` does). A split with no file is an
//!   error naming the splits there are.
//!
//! Pure functions over the repo's file list: no I/O.

/// The words that name each well-known split (the `datasets` library's keywords).
const SYNONYMS: [(&str, &[&str]); 3] = [
    ("train", &["train", "training"]),
    ("validation", &["validation", "valid", "val", "dev"]),
    ("test", &["test", "testing", "eval", "evaluation"]),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("no configuration `{config}`: the repo's data files are in {}", list(.available))]
    NoConfig {
        config: String,
        available: Vec<String>,
    },
    #[error("no data file for split `{split}`{}: the files name the splits {}", in_config(.config), list(.available))]
    NoSplit {
        split: String,
        config: Option<String>,
        available: Vec<String>,
    },
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn in_config(c: &Option<String>) -> String {
    c.as_ref()
        .map(|c| format!(" in configuration `{c}`"))
        .unwrap_or_default()
}

/// The words of a path: split at separators and digits, lowercased.
fn words(path: &str) -> Vec<String> {
    path.split(|c: char| matches!(c, '/' | '-' | '_' | '.' | ' ') || c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The words that name `split`: its synonyms for the well-known three, else itself.
fn keywords(split: &str) -> Vec<String> {
    let s = split.to_ascii_lowercase();
    SYNONYMS
        .iter()
        .find(|(name, syn)| *name == s || syn.contains(&s.as_str()))
        .map(|(_, syn)| syn.iter().map(|w| w.to_string()).collect())
        .unwrap_or_else(|| vec![s])
}

/// The well-known splits a path names.
fn known_splits(path: &str) -> Vec<&'static str> {
    let w = words(path);
    SYNONYMS
        .iter()
        .filter(|(_, syn)| syn.iter().any(|k| w.iter().any(|x| x == k)))
        .map(|(name, _)| *name)
        .collect()
}

/// The files of `names` (repo-relative, `/`-separated) that make `split` of `config`, sorted.
pub fn select(
    names: &[String],
    split: &str,
    config: Option<&str>,
) -> Result<Vec<String>, SplitError> {
    let scoped: Vec<(&String, &str)> = match config {
        Some(c) => {
            let inside: Vec<(&String, &str)> = names
                .iter()
                .filter_map(|n| n.strip_prefix(c)?.strip_prefix('/').map(|rest| (n, rest)))
                .collect();
            if inside.is_empty() {
                let mut available: Vec<String> = names
                    .iter()
                    .filter_map(|n| n.split_once('/').map(|(d, _)| d.to_string()))
                    .collect();
                available.sort();
                available.dedup();
                return Err(SplitError::NoConfig {
                    config: c.into(),
                    available,
                });
            }
            inside
        }
        None => names.iter().map(|n| (n, n.as_str())).collect(),
    };
    let want = keywords(split);
    let mut picked: Vec<String> = scoped
        .iter()
        .filter(|(_, rel)| words(rel).iter().any(|w| want.contains(w)))
        .map(|(n, _)| n.to_string())
        .collect();
    let named: Vec<&str> = {
        let mut v: Vec<&str> = scoped.iter().flat_map(|(_, r)| known_splits(r)).collect();
        v.sort();
        v.dedup();
        v
    };
    if picked.is_empty() && named.is_empty() && keywords("train") == want {
        picked = scoped.iter().map(|(n, _)| n.to_string()).collect();
    }
    if picked.is_empty() {
        return Err(SplitError::NoSplit {
            split: split.into(),
            config: config.map(str::to_string),
            available: if named.is_empty() {
                vec!["train".into()]
            } else {
                named.iter().map(|s| s.to_string()).collect()
            },
        });
    }
    picked.sort();
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splits_by_the_words_of_file_names_and_folders() {
        let repo = names(&[
            "data/train-00000-of-00002.parquet",
            "data/train-00001-of-00002.parquet",
            "data/validation-00000-of-00001.parquet",
            "data/test.jsonl",
            "boolq.eval.jsonl",
        ]);
        assert_eq!(
            select(&repo, "train", None).unwrap(),
            names(&[
                "data/train-00000-of-00002.parquet",
                "data/train-00001-of-00002.parquet"
            ])
        );
        assert_eq!(
            select(&repo, "validation", None).unwrap(),
            names(&["data/validation-00000-of-00001.parquet"])
        );
        // `eval` is a word for the test split, as in `datasets`
        assert_eq!(
            select(&repo, "test", None).unwrap(),
            names(&["boolq.eval.jsonl", "data/test.jsonl"])
        );
        // a word must match whole: `contest.jsonl` is not the test split, `val` is validation
        let repo = names(&["contest.jsonl", "val/part0.json", "dev_extra.json"]);
        assert_eq!(
            select(&repo, "validation", None).unwrap(),
            names(&["dev_extra.json", "val/part0.json"])
        );
        let e = select(&repo, "test", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no data file for split `test`: the files name the splits `validation`"
        );
    }

    #[test]
    fn files_that_name_no_split_are_the_train_split() {
        let repo = names(&["commonsense_170k.json"]);
        assert_eq!(select(&repo, "train", None).unwrap(), repo);
        let e = select(&repo, "test", None).unwrap_err();
        assert!(matches!(e, SplitError::NoSplit { .. }), "{e}");
        assert!(e.to_string().contains("splits `train`"), "{e}");
    }

    #[test]
    fn configurations_are_top_level_folders() {
        let repo = names(&[
            "en/train.jsonl",
            "en/test.jsonl",
            "de/train/0000.parquet",
            "README.md",
        ]);
        assert_eq!(
            select(&repo, "train", Some("de")).unwrap(),
            names(&["de/train/0000.parquet"])
        );
        assert_eq!(
            select(&repo, "test", Some("en")).unwrap(),
            names(&["en/test.jsonl"])
        );
        let e = select(&repo, "train", Some("fr")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no configuration `fr`: the repo's data files are in `de`, `en`"
        );
        let e = select(&repo, "test", Some("de")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no data file for split `test` in configuration `de`: the files name the splits `train`"
        );
        // `en` must be a whole folder name, not a prefix (`end/`)
        let repo = names(&["end/train.jsonl"]);
        assert!(select(&repo, "train", Some("en")).is_err());
    }
}
