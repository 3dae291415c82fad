"""The CSV export of ``bench_export.py`` taken apart: how fast could the product be on this
machine, given what its parts cost alone?

    python benchmarks/bench_csv_parts.py            # 8.64M store rows, 5 rounds
    python benchmarks/bench_csv_parts.py --scale 10 --runs 2
    python benchmarks/bench_csv_parts.py --overlap  # and the streamed-upload prototype

Each round runs, as fresh processes in rotating order, on the same store and the same local
S3 server:

- ``product``: the whole export (``python -m export_pipeline run``), as in ``bench_export.py``;
- ``duckdb``: the DuckDB reference (``ref_duckdb.py``);
- ``startup``: the product on one hour of the same request (1,000 rows): the interpreter,
  Dagster's import, the instance, the run and its resources, a tiny read and upload;
- ``read``: the product's plain modules alone, no Dagster: validate, plan, read the store
  and combine the table (``part_read.py``);
- ``upload``: the product's uploader alone (``publishing.s3_upload``), streaming the export's
  CSV (119 MB at the default size) from a local file into the S3 server and signing a URL
  (``part_upload.py``).

With ``--overlap``, two more, a prototype the product does not use (``part_overlap.py``):
``sequential`` reads the table beside a stand-in for Dagster's start-up and then uploads it,
as the product does; ``streamed`` encodes and uploads each slice of the read while the next
is read. Each one's file is checked in the first round to be the product's, byte for byte.

Each is timed from process start to its last printed line, with the CPU seconds of its
process and of the S3 server meanwhile. The summary sets the product against two lower
bounds. The file can only be written once its table exists and Dagster runs the op that
writes it, so the upload starts after both the read and Dagster's start-up. On this
machine's cores both spend their CPU time first: ``(startup + read) CPU / cores + upload``,
with the read's own CPU and the upload's own time, which the part scripts print, without
the start-up the product pays once. With cores to spare: ``max(startup, read) + upload``.
Both leave out writing the CSV, which overlaps the upload.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench_export import (
    END,
    HERE,
    ISO,
    ROOT,
    START,
    bench_environment,
    download,
    export_request,
    generate_store,
    start_s3_server,
)

PARTS = ("product", "duckdb", "startup", "read", "upload")
OVERLAP_PARTS = ("sequential", "streamed")


@dataclass
class Timing:
    wall: float
    cpu: float
    server_cpu: float
    last_line: str


def timed(command: list[str], env: dict, server: psutil.Process) -> Timing:
    """Wall time to the last printed line, the process's CPU seconds (user and system, from
    its exit status) and the S3 server's over the same span."""
    before = server.cpu_times()
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    lines = []
    last_at = started
    for line in child.stdout:
        lines.append(line.decode())
        last_at = time.perf_counter()
    stderr = child.stderr.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    after = server.cpu_times()
    if os.waitstatus_to_exitcode(status) != 0 or not lines:
        raise RuntimeError(f"{command} failed:\n{stderr[-4000:]}")
    return Timing(
        wall=last_at - started,
        cpu=usage.ru_utime + usage.ru_stime,
        server_cpu=(after.user - before.user) + (after.system - before.system),
        last_line=lines[-1],
    )


def one_hour(request: dict) -> dict:
    """The request over its first hour only."""
    short = json.loads(json.dumps(request))
    for metric_request in short["metricRequests"]:
        metric_request["end"] = START.replace(minute=59, second=59).strftime(ISO)
    return short


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=1, help="multiplies the 1,000 entities")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, help="where the store goes (default: a temp dir)")
    parser.add_argument("--overlap", action="store_true",
                        help="also time the streamed-upload prototype (part_overlap.py)")
    args = parser.parse_args()
    parts = PARTS + (OVERLAP_PARTS if args.overlap else ())

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-csv-parts-"))
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / f"store-x{args.scale}"
    if not any(store.glob("*.parquet")):
        generate_store(store, 1000 * args.scale)
    requests = {"full": export_request(), "hour": one_hour(export_request())}
    paths = {}
    for name, request in requests.items():
        paths[name] = workdir / f"request-{name}.json"
        paths[name].write_text(json.dumps(request))
    server_process, endpoint = start_s3_server()
    server = psutil.Process(server_process.pid)
    try:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        env, s3 = bench_environment(endpoint, bucket, EXPORT_METRICS_PATH=str(store))
        csv_file = workdir / "export.csv"

        def command(part: str, round_: int) -> list[str]:
            if part == "product":
                return [sys.executable, "-m", "export_pipeline", "run", str(paths["full"])]
            if part == "startup":
                return [sys.executable, "-m", "export_pipeline", "run", str(paths["hour"])]
            if part == "duckdb":
                return [sys.executable, str(HERE / "ref_duckdb.py"), str(store), bucket,
                        f"ref/duckdb-{round_}.csv", START.strftime(ISO), END.strftime(ISO)]
            if part == "read":
                return [sys.executable, str(HERE / "part_read.py"), str(paths["full"])]
            if part in OVERLAP_PARTS:
                return [sys.executable, str(HERE / "part_overlap.py"), part, str(paths["full"]),
                        bucket, f"parts/{part}-{round_}.csv"]
            return [sys.executable, str(HERE / "part_upload.py"), str(csv_file), bucket,
                    f"parts/upload-{round_}.csv"]

        # The upload part sends the product's own file: made once, unmeasured.
        made = timed(command("product", -1), env, server)
        download(json.loads(made.last_line)["signedUrl"], csv_file)
        print(f"store: {store}; the export is {csv_file.stat().st_size / 1e6:,.0f} MB", flush=True)

        results: dict[str, list[Timing]] = {p: [] for p in parts}
        for round_ in range(args.runs):
            order = parts[round_ % len(parts):] + parts[:round_ % len(parts)]
            for part in order:
                t = timed(command(part, round_), env, server)
                results[part].append(t)
                if round_ == 0 and part in OVERLAP_PARTS:
                    download(json.loads(t.last_line)["signedUrl"], workdir / "overlap.csv")
                    if not filecmp.cmp(workdir / "overlap.csv", csv_file, shallow=False):
                        raise RuntimeError(f"{part}: its file is not the product's")
                print(f"  round {round_ + 1} {part:8s} {t.wall:6.2f} s  cpu {t.cpu:5.2f} s  "
                      f"S3 server cpu {t.server_cpu:5.2f} s",
                      flush=True)
            for key in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=key["Key"])
    finally:
        server_process.terminate()
        server_process.wait(timeout=30)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    def median(part: str, field: str) -> float:
        return statistics.median(getattr(t, field) for t in results[part])

    cores = os.cpu_count() or 1
    print(f"\nmedians of {args.runs} rounds on {cores} cores")
    print(f"{'':9s} {'wall s':>7s} {'cpu s':>6s} {'S3 cpu s':>9s}")
    for part in parts:
        print(f"{part:10s} {median(part, 'wall'):7.2f} {median(part, 'cpu'):6.2f} "
              f"{median(part, 'server_cpu'):9.2f}")
    startup, read = median("startup", "wall"), median("read", "wall")
    upload = statistics.median(json.loads(t.last_line)["seconds"] for t in results["upload"])
    # The read's own CPU, without the imports and validation the start-up already counts.
    read_cpu = statistics.median(json.loads(t.last_line)["cpu"] for t in results["read"])
    before_upload = (median("startup", "cpu") + read_cpu) / cores
    duckdb = median("duckdb", "wall")
    product = median("product", "wall")
    print(f"\nproduct {product:.2f} s = {product / duckdb:.2f}x DuckDB ({duckdb:.2f} s)")
    print(f"the read's own CPU (store read and combine, no imports): {read_cpu:.2f} s; "
          f"the upload's own time (first part to URL, no start-up): {upload:.2f} s")
    print(f"bound on {cores} cores, (startup + read) CPU / {cores} + upload: "
          f"{before_upload + upload:.2f} s = {(before_upload + upload) / duckdb:.2f}x DuckDB")
    print(f"bound on unlimited cores, max(startup, read) + upload: {max(startup, read) + upload:.2f} s"
          f" = {(max(startup, read) + upload) / duckdb:.2f}x DuckDB")
    if args.overlap:
        ratios = [streamed.wall / sequential.wall
                  for streamed, sequential in zip(results["streamed"], results["sequential"])]
        startups = {p: statistics.median(json.loads(t.last_line)["startup"] for t in results[p])
                    for p in OVERLAP_PARTS}
        print(f"prototype: streamed / sequential {statistics.median(ratios):.2f}x (median of "
              f"per-round ratios); Dagster's start-up ended at {startups['sequential']:.2f} s "
              f"sequential, {startups['streamed']:.2f} s streamed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
