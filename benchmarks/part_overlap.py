"""A prototype the product does not use (see ``bench_csv_parts.py --overlap``): would the CSV
export be faster if each slice of the store read were encoded and uploaded while the next is
read, instead of reading the whole table and then uploading it?

Both modes run the product's plain modules (plan, the Parquet source's slices, ``combine``,
``iter_csv``, the multipart uploader) in a background thread while the main thread pays what
Dagster's start-up costs the product before its first op: importing Dagster and the export
job's modules, an ephemeral instance and a one-op run in it.

- ``sequential``: the background thread reads the whole table (the product's read-ahead);
  after the start-up the main thread combines it and uploads the CSV.
- ``streamed``: the background thread reads the window slice by slice, combines and encodes
  each slice and streams it into the upload; the main thread waits for it after the start-up.

The streamed file is the sequential one only because the request sorts by date first and the
slices follow each other in time; the product would have to check that before streaming.
Usage: ``python part_overlap.py sequential|streamed REQUEST BUCKET KEY``, the store in
``EXPORT_METRICS_PATH``. Prints the URL, the bytes and when Dagster's start-up ended.
"""

import json
import os
import sys
import threading
import time
from dataclasses import replace

import boto3
from botocore.config import Config

from export_pipeline.formats.csv_writer import iter_csv
from export_pipeline.planning.prepared import prepare_export
from export_pipeline.publishing.publish import csv_options
from export_pipeline.publishing.s3_upload import presign_get, upload_stream
from export_pipeline.store.parquet import ParquetMetricSource, _slices
from export_pipeline.table.combine import combine

STARTED = time.perf_counter()


def dagster_startup() -> None:
    import dagster as dg

    from export_pipeline.orchestration import environment, jobs  # noqa: F401

    @dg.op
    def one():
        return 1

    @dg.job
    def tiny():
        one()

    with dg.DagsterInstance.ephemeral() as instance:
        tiny.execute_in_process(instance=instance)


def main(mode: str, request_path: str, bucket: str, key: str) -> None:
    source = ParquetMetricSource(os.environ["EXPORT_METRICS_PATH"])
    with open(request_path, encoding="utf-8") as f:
        prepared = prepare_export(json.load(f), source, run_id="part-overlap")
    request = prepared.validated.request
    (scan,) = prepared.plan.scans
    options = csv_options(request)
    session = boto3.session.Session()
    client = session.client("s3")

    def table(frame):
        fetched: dict[int, list] = {}
        for task in sorted(scan.tasks, key=lambda t: (t.request_index, t.window_index)):
            fetched.setdefault(task.request_index, []).append(frame)
        return combine(request, fetched)

    def streamed_chunks():
        for n, window in enumerate(_slices(scan.query)):
            chunks = iter_csv(table(source.fetch(replace(scan.query, window=window))), options=options)
            header = next(chunks)
            if n == 0:
                yield header
            yield from chunks

    done: dict = {}

    def background() -> None:
        if mode == "streamed":
            done["bytes"] = upload_stream(client, bucket, key, streamed_chunks(), "text/csv").bytes
        else:
            done["frame"] = source.fetch(scan.query)

    worker = threading.Thread(target=background)
    worker.start()
    dagster_startup()
    started_up = time.perf_counter() - STARTED
    worker.join()
    if mode == "sequential":
        chunks = iter_csv(table(done["frame"]), options=options)
        done["bytes"] = upload_stream(client, bucket, key, chunks, "text/csv").bytes
    url = presign_get(session.client("s3", config=Config(signature_version="s3v4")), bucket, key, 3600)
    print(json.dumps({"signedUrl": url, "bytes": done["bytes"], "startup": started_up}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
