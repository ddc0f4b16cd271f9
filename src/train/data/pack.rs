//! Packing: concatenate examples into rows of exactly `seq_len` tokens (the last row may be
//! shorter), splitting examples across rows, as transformers' `group_texts`. The first token of
//! each example that starts inside a row gets `IGNORE_INDEX` as its label, so the last token of
//! the previous example is never trained to predict it. Attention still spans example boundaries
//! within a row (the `Batch` contract has a padding mask, not a block-diagonal one).

use crate::train::batch::{Example, IGNORE_INDEX};

use super::error::DataError;

pub fn pack(examples: &[Example], seq_len: usize) -> Result<Vec<Example>, DataError> {
    if seq_len == 0 {
        return Err(DataError::Config(
            "packing length must be at least 1".into(),
        ));
    }
    let mut rows = Vec::new();
    let mut cur = Example {
        input_ids: Vec::with_capacity(seq_len),
        labels: Vec::with_capacity(seq_len),
    };
    for ex in examples {
        let mut first = true;
        for (&id, &label) in ex.input_ids.iter().zip(&ex.labels) {
            if cur.input_ids.len() == seq_len {
                rows.push(std::mem::replace(
                    &mut cur,
                    Example {
                        input_ids: Vec::with_capacity(seq_len),
                        labels: Vec::with_capacity(seq_len),
                    },
                ));
            }
            let label = if first && !cur.input_ids.is_empty() {
                IGNORE_INDEX
            } else {
                label
            };
            cur.input_ids.push(id);
            cur.labels.push(label);
            first = false;
        }
    }
    if !cur.input_ids.is_empty() {
        rows.push(cur);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(ids: &[u32]) -> Example {
        Example {
            input_ids: ids.to_vec(),
            labels: ids.iter().map(|&i| i as i64).collect(),
        }
    }

    #[test]
    fn packs_into_fixed_rows_and_cuts_cross_example_labels() {
        let rows = pack(&[ex(&[1, 2, 3]), ex(&[4, 5]), ex(&[6, 7, 8, 9])], 4).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.input_ids.clone()).collect::<Vec<_>>(),
            vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9]]
        );
        assert_eq!(rows[0].labels, vec![1, 2, 3, IGNORE_INDEX]);
        assert_eq!(rows[1].labels, vec![5, IGNORE_INDEX, 7, 8]);
        assert_eq!(rows[2].labels, vec![9]);
    }
}
