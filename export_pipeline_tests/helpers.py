"""Small helpers the tests share."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def write_store(folder: Path, frame: pl.DataFrame, files: int = 1) -> Path:
    """Write ``frame`` as a metric store of ``files`` Parquet files (split by row)."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-frame.height // files)
    for i in range(files):
        frame.slice(i * size, size).write_parquet(folder / f"part-{i}.parquet")
    return folder


def all_objects(s3_client, bucket: str) -> list[str]:
    return [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
