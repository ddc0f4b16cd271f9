//! Training metrics as a TensorBoard event file, with the tags Hugging Face's Trainer writes
//! (`transformers.integrations.TensorBoardCallback`, which logs the Trainer's `loss`,
//! `learning_rate`, `grad_norm`, `epoch` as `train/<name>` and `eval_loss` as `eval/loss`), so a
//! rora run and a Trainer run line up in one dashboard. W&B's offline `wandb sync
//! --sync-tensorboard` reads the same file.
//!
//! The format is TensorFlow's: a TFRecord file (`tensorflow/core/lib/io/record_writer.cc`) of
//! `Event` protos (`tensorboard/compat/proto/event.proto`). Each record is the data's length as a
//! little-endian u64, the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of
//! the data (mask: rotate right 15, add 0xa282ead8). The first event carries `file_version`
//! `brain.Event:2`; each later one `wall_time`, `step` and a `Summary` of `simple_value`
//! scalars. The protobuf encoding is written by hand: five fields, no dependency.

use std::path::{Path, PathBuf};

use super::metrics::{EvalMetrics, StepMetrics};

/// The CRC-32C (Castagnoli, reflected polynomial 0x82f63b78) of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82f6_3b78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for b in data {
        c = TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

fn masked(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn len_delimited(field: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push((field << 3) | 2);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// One `Event` proto: `wall_time` (1, double), `step` (2, int64), then `file_version` (3) or a
/// `summary` (5) of `Value { tag (1), simple_value (2, float) }`.
fn event(wall_time: f64, step: i64, body: EventBody<'_>) -> Vec<u8> {
    let mut e = vec![0x09];
    e.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        e.push(0x10);
        varint(step as u64, &mut e);
    }
    match body {
        EventBody::FileVersion(v) => len_delimited(3, v.as_bytes(), &mut e),
        EventBody::Scalars(values) => {
            let mut summary = Vec::new();
            for (tag, v) in values {
                let mut value = Vec::new();
                len_delimited(1, tag.as_bytes(), &mut value);
                value.push(0x15);
                value.extend_from_slice(&(*v as f32).to_le_bytes());
                len_delimited(1, &value, &mut summary);
            }
            len_delimited(5, &summary, &mut e);
        }
    }
    e
}

enum EventBody<'a> {
    FileVersion(&'a str),
    Scalars(&'a [(&'a str, f64)]),
}

fn record(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked(crc32c(&len)).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked(crc32c(data)).to_le_bytes());
}

/// The tags of one training step, as HF's Trainer names them in TensorBoard.
pub fn step_scalars(m: &StepMetrics) -> [(&'static str, f64); 4] {
    [
        ("train/loss", m.loss),
        ("train/learning_rate", m.lr),
        ("train/grad_norm", m.grad_norm),
        ("train/epoch", m.epoch),
    ]
}

/// One logged record: seconds since the start, step, tagged scalars.
type Logged<'a> = (f64, i64, Vec<(&'a str, f64)>);

/// The event file of a run's metrics: each step and validation record at `start + elapsed_s`
/// (unix seconds), in the order they were logged.
pub fn events(start: f64, steps: &[StepMetrics], evals: &[EvalMetrics]) -> Vec<u8> {
    let mut out = Vec::new();
    record(
        &event(start, 0, EventBody::FileVersion("brain.Event:2")),
        &mut out,
    );
    let mut all: Vec<Logged> = steps
        .iter()
        .map(|m| (m.elapsed_s, m.step as i64, step_scalars(m).to_vec()))
        .collect();
    all.extend(
        evals
            .iter()
            .map(|e| (e.elapsed_s, e.step as i64, vec![("eval/loss", e.val_loss)])),
    );
    // stable: a step's train scalars come before its validation loss
    all.sort_by_key(|a| a.1);
    for (elapsed, step, scalars) in &all {
        record(
            &event(start + elapsed, *step, EventBody::Scalars(scalars)),
            &mut out,
        );
    }
    out
}

/// The file name TensorBoard looks for: `events.out.tfevents.<unix seconds>.<host>`.
pub fn file_name(start: f64) -> String {
    format!("events.out.tfevents.{}.rora", start as u64)
}

/// Write the event file of `metrics.jsonl`'s records into `dir` (created); its path.
pub fn write(dir: &Path, metrics_jsonl: &str, now: f64) -> std::io::Result<PathBuf> {
    let (mut steps, mut evals) = (Vec::new(), Vec::new());
    for line in metrics_jsonl.lines() {
        if let Ok(m) = serde_json::from_str::<StepMetrics>(line)
            && m.kind == "train"
        {
            steps.push(m);
        } else if let Ok(e) = serde_json::from_str::<EvalMetrics>(line) {
            evals.push(e);
        }
    }
    let total = steps
        .iter()
        .map(|m| m.elapsed_s)
        .chain(evals.iter().map(|e| e.elapsed_s))
        .fold(0.0, f64::max);
    let start = now - total;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(file_name(start));
    std::fs::write(&path, events(start, &steps, &evals))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read a TFRecord file back, checking both CRCs of every record.
    fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = vec![];
        let mut i = 0;
        while i < bytes.len() {
            let len_bytes = &bytes[i..i + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[i + 8..i + 12].try_into().unwrap());
            assert_eq!(crc, masked(crc32c(len_bytes)));
            let data = &bytes[i + 12..i + 12 + len];
            let crc = u32::from_le_bytes(bytes[i + 12 + len..i + 16 + len].try_into().unwrap());
            assert_eq!(crc, masked(crc32c(data)));
            out.push(data.to_vec());
            i += 16 + len;
        }
        out
    }

    // RFC 3720 (iSCSI) B.4 test vectors for CRC-32C, and the check value of the catalogue of
    // parametrised CRCs ("123456789" -> 0xe3069283).
    #[test]
    fn crc32c_matches_published_vectors() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46dd_794e);
    }

    fn step(step: usize, loss: f64) -> StepMetrics {
        StepMetrics {
            kind: "train".into(),
            step,
            total_steps: 2,
            epoch: step as f64 / 2.0,
            loss,
            lr: 1e-3,
            grad_norm: 0.5,
            tokens: 10,
            loss_tokens: 5,
            tokens_per_s: 1.0,
            elapsed_s: step as f64,
        }
    }

    // The bytes of the first event, written out by hand from event.proto: wall_time (field 1,
    // fixed64) then file_version (field 3, length-delimited).
    #[test]
    fn events_are_tfrecords_of_event_protos() {
        let bytes = events(
            100.0,
            &[step(1, 2.5), step(2, 2.0)],
            &[EvalMetrics {
                kind: "eval".into(),
                step: 2,
                val_loss: 1.75,
                val_tokens: 9,
                elapsed_s: 2.5,
            }],
        );
        let recs = records(&bytes);
        assert_eq!(recs.len(), 4);
        let mut first = vec![0x09];
        first.extend_from_slice(&100.0f64.to_le_bytes());
        first.extend_from_slice(&[0x1a, 13]);
        first.extend_from_slice(b"brain.Event:2");
        assert_eq!(recs[0], first);
        // step 2's train event: wall_time 102, step 2, four tagged floats
        let r = &recs[2];
        assert_eq!(&r[1..9], &102.0f64.to_le_bytes());
        assert_eq!(&r[9..11], &[0x10, 2]);
        let text = String::from_utf8_lossy(r);
        for tag in [
            "train/loss",
            "train/learning_rate",
            "train/grad_norm",
            "train/epoch",
        ] {
            assert!(text.contains(tag), "{tag}");
        }
        let loss_at = r.windows(10).position(|w| w == b"train/loss").unwrap() + 10;
        assert_eq!(r[loss_at], 0x15);
        assert_eq!(&r[loss_at + 1..loss_at + 5], &2.0f32.to_le_bytes());
        let last = String::from_utf8_lossy(&recs[3]);
        assert!(last.contains("eval/loss"), "{last}");
    }
}
