"""The pandas reference: what a data engineer would write by hand for the benchmark's export.

Read the store (only the needed columns, the window pushed to pyarrow), floor to the hour,
one groupby per metric request, merge them, sort, ``to_csv`` to a local file, upload with
boto3's managed transfer and print a SigV4 URL.
Usage: ``python ref_pandas.py STORE BUCKET KEY START END``.
"""

import os
import sys
import tempfile

import pandas as pd

from ref_upload import upload_and_print_url

MEASURES = ("visits", "dwell_seconds", "revenue")


def main(store: str, bucket: str, key: str, start: str, end: str) -> None:
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    frame = pd.read_parquet(
        store,
        columns=["timestamp", "entity_id", *MEASURES],
        filters=[("timestamp", ">=", lo), ("timestamp", "<=", hi)],
    )
    frame["Date"] = frame["timestamp"].dt.floor("h")
    merged = None
    for measure in MEASURES:
        part = frame.groupby(["Date", "entity_id"], sort=False)[measure].sum().reset_index()
        merged = part if merged is None else merged.merge(part, on=["Date", "entity_id"], how="outer")
    merged = merged.sort_values(["Date", "entity_id"])
    merged["Date"] = merged["Date"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    merged = merged.rename(columns={"entity_id": "Entity"})
    with tempfile.TemporaryDirectory(prefix="ref-pandas-") as tmp:
        path = os.path.join(tmp, "export.csv")
        merged.to_csv(path, index=False, lineterminator="\r\n")
        upload_and_print_url(path, bucket, key)


if __name__ == "__main__":
    main(*sys.argv[1:6])
