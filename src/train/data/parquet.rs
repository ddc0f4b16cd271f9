//! Parquet rows as JSON objects, one record batch at a time, converted by arrow's own JSON
//! encoder (`arrow_json`, line-delimited, nulls written): strings, numbers, booleans, lists,
//! structs, maps, dictionary-encoded strings, dates and timestamps (as strings) all come out as
//! arrow writes them; a column type the encoder refuses is an error naming the column. Pages may
//! be compressed with any codec Parquet writers use: snappy, gzip, zstd, lz4 (raw and hadoop) and
//! brotli.

use std::fs::File;
use std::path::Path;

use arrow::array::RecordBatch;
use arrow::json::WriterBuilder;
use arrow::json::writer::LineDelimited;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use super::error::{DataError, Location, RecordSink};

pub(crate) fn read_parquet(path: &Path, sink: &mut RecordSink<'_>) -> Result<(), DataError> {
    let perr = |message: String| DataError::Parquet {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| perr(e.to_string()))?
        .with_batch_size(1024)
        .build()
        .map_err(|e| perr(e.to_string()))?;
    let mut row_index = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| perr(e.to_string()))?;
        let lines = match encode(&batch) {
            Ok(b) => b,
            Err(e) => {
                let (field, message) = failing_column(&batch).unwrap_or_default();
                return Err(DataError::Field {
                    path: path.to_path_buf(),
                    location: Location::Row(row_index),
                    field,
                    message: if message.is_empty() { e } else { message },
                });
            }
        };
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(line)
                .map_err(|e| perr(format!("arrow's JSON for row {row_index}: {e}")))?;
            sink(Location::Row(row_index), v)?;
            row_index += 1;
        }
    }
    Ok(())
}

/// The batch as JSON lines, one object per row, null cells written as `null`.
fn encode(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut w = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, LineDelimited>(&mut buf);
    w.write(batch).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    Ok(buf)
}

/// The first column the encoder refuses on its own, with the encoder's message.
fn failing_column(batch: &RecordBatch) -> Option<(String, String)> {
    let schema = batch.schema();
    (0..batch.num_columns()).find_map(|i| {
        let one = batch.project(&[i]).ok()?;
        encode(&one).err().map(|e| {
            let f = schema.field(i);
            (
                f.name().clone(),
                format!("unsupported Parquet column type {}: {e}", f.data_type()),
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Array, DictionaryArray, Int64Array, ListBuilder, StringArray, StringBuilder, StructBuilder,
    };
    use arrow::datatypes::{DataType, Field, Fields, Int32Type, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
    use parquet::file::properties::WriterProperties;

    use super::super::read::read_records;
    use super::*;

    #[test]
    fn parquet_rows_become_json_objects() {
        let mut choices = ListBuilder::new(StringBuilder::new());
        for row in [["a", "b"], ["c", "d"]] {
            for c in row {
                choices.values().append_value(c);
            }
            choices.append(true);
        }
        let choices = choices.finish();
        let schema = Arc::new(Schema::new(vec![
            Field::new("question", DataType::Utf8, false),
            Field::new("choices", choices.data_type().clone(), true),
            Field::new("label", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["q1", "q2"])),
                Arc::new(choices),
                Arc::new(Int64Array::from(vec![1, 0])),
            ],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let rows = read_records(&path).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].0, Location::Row(1));
        assert_eq!(
            rows[1].1,
            serde_json::json!({"question": "q2", "choices": ["c", "d"], "label": 0})
        );
        std::fs::write(&path, b"not parquet").unwrap();
        let e = read_records(&path).unwrap_err().to_string();
        assert!(e.contains("t.parquet: parquet:"), "{e}");
    }

    fn write(path: &Path, batch: &RecordBatch, compression: Compression) {
        let props = WriterProperties::builder()
            .set_compression(compression)
            .build();
        let mut w =
            ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
    }

    /// Chat rows as the hub stores them: `messages` a list of {role, content} structs, a
    /// dictionary-encoded source column, a null.
    fn chat_batch() -> RecordBatch {
        let fields = Fields::from(vec![
            Field::new("role", DataType::Utf8, false),
            Field::new("content", DataType::Utf8, true),
        ]);
        let mut messages = ListBuilder::new(StructBuilder::from_fields(fields.clone(), 4));
        for conv in [
            vec![("user", Some("Hi é 中文")), ("assistant", Some("Hello!"))],
            vec![("system", None), ("user", Some("2+2?"))],
        ] {
            for (role, content) in conv {
                let st = messages.values();
                st.field_builder::<StringBuilder>(0)
                    .unwrap()
                    .append_value(role);
                st.field_builder::<StringBuilder>(1)
                    .unwrap()
                    .append_option(content);
                st.append(true);
            }
            messages.append(true);
        }
        let messages = messages.finish();
        let source: DictionaryArray<Int32Type> = vec!["a", "a"].into_iter().collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("messages", messages.data_type().clone(), true),
            Field::new("source", source.data_type().clone(), false),
        ]));
        RecordBatch::try_new(schema, vec![Arc::new(messages), Arc::new(source)]).unwrap()
    }

    // List-of-struct and dictionary columns (what `datasets` writes for chat data) convert as
    // arrow's JSON encoder writes them; the hand-written conversion this replaced refused them.
    #[test]
    fn struct_list_and_dictionary_columns_become_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.parquet");
        write(&path, &chat_batch(), Compression::SNAPPY);
        let rows = read_records(&path).unwrap();
        assert_eq!(
            rows[0].1,
            serde_json::json!({"messages": [{"role": "user", "content": "Hi é 中文"},
                {"role": "assistant", "content": "Hello!"}], "source": "a"})
        );
        assert_eq!(
            rows[1].1["messages"][0],
            serde_json::json!({"role": "system", "content": null})
        );
    }

    // Every codec Parquet writers use reads back to the same rows (the files written by pyarrow
    // are read through `rora run` in tests/integration/peft_interop.rs when pyarrow is installed).
    #[test]
    fn every_codec_reads_back_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let want = {
            let p = dir.path().join("plain.parquet");
            write(&p, &chat_batch(), Compression::UNCOMPRESSED);
            read_records(&p).unwrap()
        };
        for (name, c) in [
            ("snappy", Compression::SNAPPY),
            ("gzip", Compression::GZIP(GzipLevel::default())),
            ("zstd", Compression::ZSTD(ZstdLevel::default())),
            ("lz4", Compression::LZ4),
            ("lz4_raw", Compression::LZ4_RAW),
            ("brotli", Compression::BROTLI(BrotliLevel::default())),
        ] {
            let p = dir.path().join(format!("{name}.parquet"));
            write(&p, &chat_batch(), c);
            assert_eq!(read_records(&p).unwrap(), want, "{name}");
        }
    }
}
