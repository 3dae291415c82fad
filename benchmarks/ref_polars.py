"""A floor, not a target: the benchmark's export as a bare polars script, with nothing the
product adds (no request validation, no Dagster, no read-ahead, no formula guard).

One lazy query (window pushed down, group-by, sort) on the streaming engine, ``write_csv`` to a
local file, boto3's managed upload and a SigV4 URL: about as fast as this work gets on the
machine at hand. Run it with ``bench_export.py --only product duckdb pandas polars``.
Usage: ``python ref_polars.py STORE BUCKET KEY START END``.
"""

import os
import sys
import tempfile
from datetime import datetime

import polars as pl

from ref_upload import upload_and_print_url

MEASURES = ("visits", "dwell_seconds", "revenue")


def main(store: str, bucket: str, key: str, start: str, end: str) -> None:
    lo, hi = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (start, end))
    table = (
        pl.scan_parquet(f"{store}/**/*.parquet")
        .filter(pl.col("timestamp").is_between(lo, hi))
        .group_by(pl.col("timestamp").dt.truncate("1h").alias("Date"), pl.col("entity_id").alias("Entity"))
        .agg(pl.col(m).sum() for m in MEASURES)
        .sort("Date", "Entity")
        .with_columns(pl.col("Date").dt.strftime("%Y-%m-%dT%H:%M:%S%:z"))
        .collect(engine="streaming")
    )
    with tempfile.TemporaryDirectory(prefix="ref-polars-") as tmp:
        path = os.path.join(tmp, "export.csv")
        table.write_csv(path, line_terminator="\r\n")
        upload_and_print_url(path, bucket, key)


if __name__ == "__main__":
    main(*sys.argv[1:6])
