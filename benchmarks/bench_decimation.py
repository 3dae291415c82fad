"""A decimated export against the plain export of the same store rows, in one run.

    python benchmarks/bench_decimation.py                 # P3M over two quarters, avg and stddev
    python benchmarks/bench_decimation.py --ds 1d --runs 5

Both are fresh ``python -m export_pipeline run REQUEST.json`` processes on the store of
``bench_export.py`` (1,000 entities x 90 days x 15 min = 8.64M rows, three measures), run in
alternating order and timed the same way (process start to the printed URL; peak RSS of the
process tree): the plain export buckets the three measures hourly, the decimated one asks
for ``--ds`` buckets over two quarters (the store fills the first) with ``avg`` of visits,
``stddev`` of dwell_seconds and ``avg`` of revenue, so both read every store row. The
decimated file is checked, after the runs, against the same statistics computed directly on
the store with polars (the first round's, or every round's with ``--verify all``), and its
bytes must be the same in every round.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import polars as pl

from bench_export import (
    DAYS,
    ISO,
    ROOT,
    START,
    Measurement,
    bench_environment,
    bench_session,
    download,
    export_request,
    generate_store,
    human_bytes,
    measure,
    print_medians,
)

END = START.replace(month=7) - timedelta(seconds=1)  # two quarters; the store fills the first
FUNCTIONS = {"visits": "avg", "dwell_seconds": "stddev", "revenue": "avg"}


def decimated_request(ds: str) -> dict:
    """The plain request's columns and sort, each metric request decimated to ``ds``."""
    request = export_request()
    for metric_request in request["metricRequests"]:
        del metric_request["aggregationPeriod"]
        metric_request.update(
            name=f"{metric_request['metricId']} by {ds}", end=END.strftime(ISO),
            decimation={"ds": ds, "dsf": FUNCTIONS[metric_request["metricId"]]},
        )
    return request


def expected_frame(store: Path, ds: str) -> pl.DataFrame:
    """The decimated table computed directly on the store: per timestamp and entity the sum of
    each measure, then per bucket and entity the mean or the sample standard deviation."""
    every = {"P3M": "3mo", "1q": "3mo", "P1M": "1mo", "1d": "1d", "P1D": "1d"}.get(ds, ds)
    stats = {"avg": lambda c: pl.col(c).mean(), "stddev": lambda c: pl.col(c).std(ddof=1)}
    return (
        pl.scan_parquet(store / "*.parquet")
        .filter(pl.col("timestamp").is_between(START, END), pl.col("entity_type") == "sensor")
        .group_by("timestamp", "entity_id")
        .agg(pl.col(m).sum() for m in FUNCTIONS)
        .group_by(pl.col("timestamp").dt.truncate(every).alias("bucket"), "entity_id")
        .agg(stats[f](m).alias(m) for m, f in FUNCTIONS.items())
        .sort("bucket", "entity_id")
        .collect()
    )


def check(path: Path, expected: pl.DataFrame) -> str | None:
    """Why the file differs from ``expected`` (rows, order, dates, values to 1e-9), or None."""
    got = pl.read_csv(path, schema_overrides={m: pl.Float64 for m in FUNCTIONS})
    if got.height != expected.height:
        return f"{got.height} rows, expected {expected.height}"
    dates = expected["bucket"].dt.strftime("%Y-%m-%d")
    if not (got["Date"] == dates).all() or not (got["Entity"] == expected["entity_id"]).all():
        return "the dates or entities differ"
    for m in FUNCTIONS:
        diff = (got[m] - expected[m]).abs() / expected[m].abs().clip(lower_bound=1.0)
        if diff.max() > 1e-9:
            return f"{m} differs by up to {diff.max():.3g} (relative)"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ds", default="P3M", help="decimation width (default P3M)")
    parser.add_argument("--runs", type=int, default=3, help="rounds; each runs both")
    parser.add_argument("--workdir", type=Path, help="where the store goes (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated store")
    parser.add_argument("--verify", choices=("first", "all"), default="first")
    args = parser.parse_args()

    with bench_session(args.workdir, "store-x1", args.keep, "bench-decimation-") as (
        workdir, store, endpoint
    ):
        if store.is_dir() and any(store.glob("*.parquet")):
            rows_in = pl.scan_parquet(store / "*.parquet").select(pl.len()).collect().item()
        else:
            rows_in = generate_store(store, 1000)
        print(f"store: {rows_in:,} rows, 1,000 entities x {DAYS} days x 15 min in {store}", flush=True)
        requests = {"plain": export_request(), "decimated": decimated_request(args.ds)}
        paths = {}
        for name, request in requests.items():
            paths[name] = workdir / f"{name}.json"
            paths[name].write_text(json.dumps(request, indent=2))
        env, s3 = bench_environment(endpoint, f"bench-{uuid.uuid4().hex[:8]}",
                                    EXPORT_METRICS_PATH=str(store))
        results: dict[str, list[Measurement]] = {n: [] for n in requests}
        files = []
        for round_ in range(args.runs):
            order = list(requests) if round_ % 2 == 0 else list(requests)[::-1]
            for name in order:
                command = [sys.executable, "-m", "export_pipeline", "run", str(paths[name])]
                m = measure(command, env, ROOT)
                results[name].append(m)
                print(f"  round {round_ + 1} {name:9s} {m.wall:7.2f} s  {human_bytes(m.peak_rss):>10s}",
                      flush=True)
            files.append(workdir / f"decimated-{round_ + 1}.csv")
            download(results["decimated"][-1].url, files[-1])
            for name in order:
                s3.delete_object(Bucket=env["EXPORT_BUCKET"], Key=results[name][-1].key)

        # Checked after the runs: a child's peak RSS counts this process's memory when it was
        # started, and the statistics below read the whole store.
        if len({hashlib.sha256(f.read_bytes()).hexdigest() for f in files}) != 1:
            print("MISMATCH: the decimated file differs between rounds", file=sys.stderr)
            return 1
        expected = expected_frame(store, args.ds)
        for round_, local in enumerate(files if args.verify == "all" else files[:1]):
            problem = check(local, expected)
            if problem:
                print(f"MISMATCH: the decimated file of round {round_ + 1} against polars on the "
                      f"store: {problem}", file=sys.stderr)
                return 1
            print(f"round {round_ + 1}: the decimated file holds the {expected.height:,} rows "
                  "polars computes on the store", flush=True)

        print(f"\n{rows_in:,} store rows; medians of {args.runs} alternating runs; the decimated "
              f"file was byte-identical in every round")
        print_medians(results)
        walls = [d.wall / p.wall for d, p in zip(results["decimated"], results["plain"])]
        rss = [d.peak_rss / p.peak_rss for d, p in zip(results["decimated"], results["plain"])]
        print(f"decimated/plain: wall {statistics.median(walls):.2f}x (per round: "
              f"{', '.join(f'{w:.2f}' for w in walls)}), peak RSS {statistics.median(rss):.2f}x")
        return 0


if __name__ == "__main__":
    sys.exit(main())
