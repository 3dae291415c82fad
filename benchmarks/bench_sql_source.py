"""Side-by-side benchmark of the SQL metric source on PostgreSQL: the product (``export-pipeline
run`` with ``EXPORT_METRICS_SOURCE=postgresql://…``) against the engine's own
``COPY (the aggregate query) TO STDOUT`` plus the same upload (``ref_postgres_copy.py``).

    python benchmarks/bench_sql_source.py                  # 1,000 entities: 8.64M store rows
    python benchmarks/bench_sql_source.py --entities 100   # a tenth, to see how it grows

The store is bench_export's standard workload (15-minute rows, three measures, a channel
dimension) loaded into a throwaway PostgreSQL server on 127.0.0.1; the request is the same
(three metric requests, hourly, one row per hour and entity). Contenders run as fresh
processes in alternating order; wall time to the printed URL and peak RSS, medians of the
rounds. The rows leaving the engine are counted by running the export's own store reads
through ``SqlMetricSource`` once (untimed) and must equal the export's rows. Needs the
``bench`` and ``sql`` extras and Debian's ``postgresql`` package.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from bench_export import (  # noqa: E402
    END, ISO, START, bench_environment, download, export_request, fingerprint, generate_store, human_bytes, measure,
    start_s3_server,
)
from export_pipeline_tests.support.sql_stores import PostgresServer  # noqa: E402


def rows_from_engine(url: str, request: dict) -> int:
    """Rows the product's store reads bring back from the engine for ``request``."""
    from export_pipeline.contract.validation import validate_document
    from export_pipeline.planning.plan import plan_export
    from export_pipeline.store.sql import SqlMetricSource

    with SqlMetricSource(url) as source:
        validated = validate_document(request, source.schema())
        for scan in plan_export(validated.request, "bench").scans:
            source.fetch(scan.query)
        return source.rows_fetched


def load(store: str, port: str) -> None:
    server = PostgresServer.__new__(PostgresServer)
    server.port, server.user = int(port), "postgres"
    server.load(pl.scan_parquet(Path(store) / "*.parquet").collect())


def main() -> int:
    if sys.argv[1:2] == ["--load"]:
        load(*sys.argv[2:4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-sql-"))
    s3_process, endpoint = start_s3_server()
    server = PostgresServer().start()
    try:
        t0 = time.perf_counter()
        rows_in = generate_store(workdir / "store", args.entities)
        # Loaded by a child process: a contender forked from a parent holding the store's rows
        # would report the parent's memory as its own peak (ru_maxrss survives fork and exec).
        subprocess.run([sys.executable, __file__, "--load", str(workdir / "store"),
                        str(server.port)], check=True)
        url = server.url()
        print(f"store: {rows_in:,} rows ({args.entities:,} entities x 90 days x 15 min) loaded "
              f"into PostgreSQL in {time.perf_counter() - t0:.1f} s", flush=True)
        request = export_request()
        request_path = workdir / "request.json"
        request_path.write_text(json.dumps(request))

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        env, s3 = bench_environment(endpoint, bucket, EXPORT_METRICS_SOURCE=url)

        def command(name: str, key: str) -> list[str]:
            if name == "product":
                return [sys.executable, "-m", "export_pipeline", "run", str(request_path)]
            return [sys.executable, str(HERE / "ref_postgres_copy.py"), "127.0.0.1",
                    str(server.port), server.user, bucket, key,
                    START.strftime(ISO), END.strftime(ISO)]

        names = ["product", "copy"]
        results: dict[str, list] = {n: [] for n in names}
        rows_out = None
        for round_ in range(args.runs):
            order = names if round_ % 2 == 0 else names[::-1]
            for name in order:
                m = measure(command(name, f"ref/{name}-{round_}.csv"), env, ROOT)
                results[name].append(m)
                print(f"  round {round_ + 1} {name:8s} {m.wall:7.2f} s "
                      f"{human_bytes(m.peak_rss):>10s}", flush=True)
            if round_ == 0:
                prints = {}
                for name in names:
                    local = workdir / f"check-{name}.csv"
                    download(results[name][-1].url, local)
                    prints[name] = fingerprint(local)
                    local.unlink()
                if len(set(prints.values())) != 1:
                    print(f"MISMATCH: the files differ: {prints}", file=sys.stderr)
                    return 1
                rows_out = prints["product"][0]
            for name in names:
                s3.delete_object(Bucket=bucket, Key=results[name][-1].key)

        wire = rows_from_engine(url, request)
        print(f"\n{rows_in:,} store rows -> {rows_out:,} export rows; rows leaving the engine "
              f"for the product: {wire:,} ({'equal' if wire == rows_out else 'NOT equal'} to the "
              f"export's rows); medians of {args.runs} alternating runs")
        print(f"{'':10s} {'wall s':>8s} {'peak RSS':>10s}")
        for name, ms in results.items():
            print(f"{name:10s} {statistics.median(m.wall for m in ms):8.2f} "
                  f"{human_bytes(statistics.median(m.peak_rss for m in ms)):>10s}")
        ratios = [p.wall / c.wall for p, c in zip(results["product"], results["copy"])]
        mem = [p.peak_rss / c.peak_rss for p, c in zip(results["product"], results["copy"])]
        print(f"product/copy: wall {statistics.median(ratios):.2f}x, peak RSS "
              f"{statistics.median(mem):.2f}x (medians of per-round ratios)")
        return 0 if wire == rows_out else 1
    finally:
        server.stop()
        s3_process.terminate()
        s3_process.wait(timeout=30)
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
