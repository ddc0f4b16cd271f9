"""Write JSONL rows as Parquet files with pyarrow, one file per codec.

    python write_parquet.py ROWS.jsonl OUT_DIR TASK

Writes OUT_DIR/<codec>/<TASK>.train.parquet for snappy, gzip, zstd, lz4, brotli and none.
"""
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

rows_path, out, task = sys.argv[1:4]
rows = [json.loads(l) for l in open(rows_path, encoding="utf-8") if l.strip()]
table = pa.Table.from_pylist(rows)
for codec in ["snappy", "gzip", "zstd", "lz4", "brotli", "none"]:
    os.makedirs(f"{out}/{codec}", exist_ok=True)
    pq.write_table(table, f"{out}/{codec}/{task}.train.parquet", compression=codec)
print(json.dumps({"rows": len(rows), "pyarrow": pa.__version__}))
