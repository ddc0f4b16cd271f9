//! Reading a training run's metrics JSONL: the train loss curve `(step, loss)` and the validation
//! losses `(step, val_loss)`.
//!
//! Accepted lines (the trainer's format): `{"kind": "train", "step": 3, "loss": 1.9, ...}` and
//! `{"kind": "eval", "step": 50, "val_loss": 1.7, ...}`. A line with `val_loss` is a validation point;
//! a line with `loss` and `step` (and no `kind`, or `kind` = "train") is a training point; other
//! lines are ignored. Malformed JSON is an error naming the file and line.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{ReportError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    pub step: u64,
    pub loss: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LossCurves {
    pub train: Vec<LossPoint>,
    pub val: Vec<LossPoint>,
}

impl LossCurves {
    /// The last validation loss, if any.
    pub fn final_val_loss(&self) -> Option<f64> {
        self.val.last().map(|p| p.loss)
    }
}

pub fn read_metrics(path: &Path) -> Result<LossCurves> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::read(path, e))?;
    parse_metrics(&text, path)
}

pub fn parse_metrics(text: &str, path: &Path) -> Result<LossCurves> {
    let mut curves = LossCurves::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| ReportError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let step = v.get("step").and_then(|s| s.as_u64());
        let kind = v.get("kind").and_then(|k| k.as_str());
        if let Some(val) = v.get("val_loss") {
            let loss = val
                .as_f64()
                .ok_or_else(|| bad("field `val_loss` is not a number".into()))?;
            let step = step.ok_or_else(|| bad("field `step` missing".into()))?;
            curves.val.push(LossPoint { step, loss });
        } else if let (Some(loss), Some(step)) = (v.get("loss"), step)
            && kind.is_none_or(|k| k == "train")
        {
            let loss = loss
                .as_f64()
                .ok_or_else(|| bad("field `loss` is not a number".into()))?;
            curves.train.push(LossPoint { step, loss });
        }
    }
    Ok(curves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_and_val_points() {
        let text = "{\"kind\":\"train\",\"step\":1,\"loss\":2.5,\"lr\":0.1}\n\
                    {\"kind\":\"eval\",\"step\":1,\"val_loss\":2.4}\n\n\
                    {\"step\":2,\"loss\":2.0}\n{\"kind\":\"other\",\"step\":2,\"loss\":9}\n\
                    {\"kind\":\"eval\",\"step\":2,\"val_loss\":2.1}\n";
        let c = parse_metrics(text, Path::new("m.jsonl")).unwrap();
        assert_eq!(
            c.train,
            vec![
                LossPoint { step: 1, loss: 2.5 },
                LossPoint { step: 2, loss: 2.0 }
            ]
        );
        assert_eq!(c.final_val_loss(), Some(2.1));
        let err = parse_metrics("{\"step\":1,\"loss\":1}\n{oops", Path::new("m.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.jsonl:2:"), "{err}");
    }
}
