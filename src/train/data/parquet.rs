//! Parquet rows as JSON objects, one record batch at a time. Columns of string, integer, float,
//! boolean, null and (nested) list types are supported; others are an error naming the column.

use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

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
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut obj = Map::new();
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                let v = cell(column.as_ref(), row).map_err(|m| DataError::Field {
                    path: path.to_path_buf(),
                    location: Location::Row(row_index),
                    field: field.name().clone(),
                    message: m,
                })?;
                obj.insert(field.name().clone(), v);
            }
            sink(Location::Row(row_index), Value::Object(obj))?;
            row_index += 1;
        }
    }
    Ok(())
}

fn cell(a: &dyn Array, i: usize) -> Result<Value, String> {
    if a.is_null(i) {
        return Ok(Value::Null);
    }
    macro_rules! prim {
        ($t:ty) => {
            Value::from(a.as_primitive::<$t>().value(i))
        };
    }
    Ok(match a.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(a.as_string_view().value(i).to_string()),
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Float32 => prim!(Float32Type),
        DataType::Float64 => prim!(Float64Type),
        DataType::List(_) => list(a.as_list::<i32>().value(i).as_ref())?,
        DataType::LargeList(_) => list(a.as_list::<i64>().value(i).as_ref())?,
        other => return Err(format!("unsupported Parquet column type {other}")),
    })
}

fn list(values: &dyn Array) -> Result<Value, String> {
    (0..values.len())
        .map(|j| cell(values, j))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder};
    use arrow::datatypes::{Field, Schema};
    use parquet::arrow::ArrowWriter;

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
}
