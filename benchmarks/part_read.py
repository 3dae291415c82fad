"""One part of the product's CSV export, alone (see ``bench_csv_parts.py``): validate and plan
the request, read the store once per scan and combine the table with the product's plain
modules, no Dagster (the benchmark's request compares no previous period).
Usage: ``python part_read.py REQUEST.json``, the store in ``EXPORT_METRICS_PATH``.
"""

import json
import os
import sys
import time

from export_pipeline.planning.prepared import prepare_export
from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline.table.combine import combine


def main(request_path: str) -> None:
    source = ParquetMetricSource(os.environ["EXPORT_METRICS_PATH"])
    with open(request_path, encoding="utf-8") as f:
        prepared = prepare_export(json.load(f), source, run_id="part-read")
    request = prepared.validated.request
    cpu = time.process_time()
    fetched: dict[int, list] = {}
    frames = [(scan, source.fetch(scan.query)) for scan in prepared.plan.scans]
    tasks = [(task, frame) for scan, frame in frames for task in scan.tasks]
    for task, frame in sorted(tasks, key=lambda t: (t[0].request_index, t[0].window_index)):
        fetched.setdefault(task.request_index, []).append(frame)
    table = combine(request, fetched)
    # The CPU of the read and combine alone, without the imports the product pays once.
    print(json.dumps({"rows": table.rows, "cpu": time.process_time() - cpu}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
