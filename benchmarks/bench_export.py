"""Side-by-side benchmark: the product's export against a hand-written DuckDB query and a
hand-written pandas script, on the same generated data and the same local S3-compatible server.

    python benchmarks/bench_export.py               # 1,000 entities x 90 days x 15 min = 8.64M rows
    python benchmarks/bench_export.py --scale 10    # 86.4M rows, a ~1.4 GB CSV
    python benchmarks/bench_export.py --layout single --dagster-home   # one Parquet file, a Dagster instance

Each contender is a fresh process (``python -m export_pipeline run REQUEST.json`` for the
product, ``ref_duckdb.py`` and ``ref_pandas.py`` for the references), run in alternating order,
timed from process start to the moment it prints the signed URL (its last line), with the peak
RSS of its whole process tree until it exits (psutil polled every 20 ms, and the kernel's own
peak for the process, ``VmHWM``, read as often).
Every file is downloaded through its signed URL and checked to hold the same rows, in the same
order, as the others. Needs the ``bench`` extra: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import polars as pl
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MEASURES = ("visits", "dwell_seconds", "revenue")
CHANNELS = ("web", "store", "app", "partner")
DAYS = 90
SLOTS_PER_DAY = 96  # 15 minutes
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
END = START + timedelta(days=DAYS) - timedelta(seconds=1)
ISO = "%Y-%m-%dT%H:%M:%SZ"
CONTENDERS = ("product", "duckdb", "pandas")
FLOORS = ("polars",)  # run on request (--only): what a bare script can do, not a reference


def generate_store(folder: Path, entities: int) -> int:
    """One Parquet file per day in the documented layout; returns the row count.

    ``revenue`` is a float on a quarter grid, so its sums are exact in any order and the three
    files can be compared cell for cell.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ids = pl.Series("entity_id", [f"ent-{i:06d}" for i in range(entities)])
    rows = 0
    for day in range(DAYS):
        rng = np.random.default_rng(day)
        n = entities * SLOTS_PER_DAY
        base = START + timedelta(days=day)
        slots = pl.datetime_range(
            base, base + timedelta(minutes=15 * (SLOTS_PER_DAY - 1)), "15m",
            eager=True, time_zone="UTC",
        )
        frame = pl.DataFrame({
            "timestamp": slots.gather(np.repeat(np.arange(SLOTS_PER_DAY), entities)),
            "entity_id": ids.gather(np.tile(np.arange(entities), SLOTS_PER_DAY)),
            "entity_type": pl.Series(["sensor"] * 1).gather(np.zeros(n, dtype=np.int64)),
            "channel": pl.Series(CHANNELS).gather(rng.integers(0, len(CHANNELS), n)),
            "visits": rng.integers(0, 60, n),
            "dwell_seconds": rng.integers(0, 3600, n),
            "revenue": rng.integers(0, 40_000, n) / 4,
        })
        frame.write_parquet(folder / f"metrics-{base:%Y-%m-%d}.parquet")
        rows += frame.height
    return rows


def single_file_store(daily: Path, folder: Path, row_group_rows: int) -> None:
    """The daily store rewritten as one Parquet file of ``row_group_rows``-row groups (how a
    warehouse export or a compaction job lays data out), streamed so memory stays flat."""
    folder.mkdir(parents=True, exist_ok=True)
    pl.scan_parquet(daily / "*.parquet").sink_parquet(
        folder / "metrics.parquet", row_group_size=row_group_rows
    )


def export_request() -> dict:
    """Three metric requests (one per measure), hourly, one row per hour and entity."""
    return {
        "csvFormat": {
            "columns": [
                {"heading": "Date"},
                {"heading": "Entity"},
                *({"heading": m, "metricId": m, "fetchValue": m} for m in MEASURES),
            ],
            "sortBy": [0, 1],
            "rowFilters": ["entity"],
        },
        "metricRequests": [
            {
                "metricId": m, "name": f"{m} by hour",
                "start": START.strftime(ISO), "end": END.strftime(ISO),
                "entityType": "sensor", "aggregationPeriod": "hour",
            }
            for m in MEASURES
        ],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            return process, endpoint
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)


@dataclass
class Measurement:
    wall: float
    peak_rss: int
    url: str
    key: str


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def own_peak(pid: int) -> int:
    """The kernel's peak RSS of the process's own memory since it started its program
    (``VmHWM``). Not ``ru_maxrss``: that survives fork and exec, so a contender would report
    this benchmark's own memory (the files it has checked) as its peak."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(command: list[str], env: dict, cwd: Path) -> Measurement:
    """Wall time from process start to the printed URL, and the peak RSS of the process tree
    until it exits."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=err)
        lines: list[bytes] = []
        url_at: list[float] = []

        def read_stdout() -> None:
            for line in child.stdout:
                if b'"signedUrl"' in line and not url_at:
                    url_at.append(time.perf_counter())
                lines.append(line)

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        watched = psutil.Process(child.pid)
        peak = 0
        while True:
            try:
                peak = max(peak, tree_rss(watched), own_peak(child.pid))
            except psutil.Error:
                pass
            pid, status, _ = os.wait4(child.pid, os.WNOHANG)
            if pid == child.pid:
                break
            time.sleep(0.02)
        reader.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode()
    if child.returncode != 0 or not url_at:
        raise RuntimeError(f"{command} exited {child.returncode}:\n{stderr[-4000:]}")
    result = json.loads(lines[-1])
    return Measurement(wall=url_at[0] - started, peak_rss=peak, url=result["signedUrl"],
                       key=result["key"])


def bench_environment(endpoint: str, bucket: str, **settings: str) -> tuple[dict, Any]:
    """The contenders' environment (the local S3 server, fake credentials, ``bucket`` and
    ``settings``) and an S3 client; ``bucket`` is created."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DAGSTER_HOME", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN")}
    env.update(
        AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull, EXPORT_BUCKET=bucket, **settings,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                      aws_secret_access_key="bench", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    compile_product()
    return env, s3


def compile_product() -> None:
    """Byte-compile the product's modules, as installing a wheel does and a first import
    otherwise would. Without it, a shell with ``PYTHONDONTWRITEBYTECODE`` set would compile
    the product's sources again in every measured run, while the references' libraries load
    from the bytecode their installers wrote."""
    if not compileall.compile_dir(ROOT / "export_pipeline", quiet=1):
        raise RuntimeError("the product's sources do not compile")


def fingerprint(path: Path) -> tuple[int, int]:
    """Row count and an order-sensitive hash of every row (numbers compared as numbers)."""
    schema = {"Date": pl.String, "Entity": pl.String, **{m: pl.Float64 for m in MEASURES}}
    row = pl.struct(pl.int_range(pl.len(), dtype=pl.Int64).alias("i"), *schema)
    lazy = pl.scan_csv(path, schema=schema).select(
        pl.len().alias("rows"),
        (row.hash(7) % (1 << 32)).cast(pl.Int64).sum().alias("hash"),
    )
    rows, digest = lazy.collect(engine="streaming").row(0)
    return rows, digest


def download(url: str, path: Path) -> None:
    with urllib.request.urlopen(url, timeout=600) as response, path.open("wb") as f:
        shutil.copyfileobj(response, f, 8 * 1024 * 1024)


def human_bytes(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


@contextlib.contextmanager
def bench_session(workdir: Path | None, store_name: str, keep: bool, prefix: str):
    """The work folder (a temporary one unless given), the store's path in it and a local S3
    server's endpoint; on exit the server stops and, unless ``keep``, the store (and a
    temporary work folder) is removed."""
    folder = workdir or Path(tempfile.mkdtemp(prefix=prefix))
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / store_name
    s3_process, endpoint = start_s3_server()
    try:
        yield folder, store, endpoint
    finally:
        s3_process.terminate()
        s3_process.wait(timeout=30)
        if not keep:
            shutil.rmtree(store, ignore_errors=True)
            if workdir is None:
                shutil.rmtree(folder, ignore_errors=True)


def print_medians(results: dict[str, list[Measurement]]) -> None:
    """Each contender's median wall time and peak RSS."""
    print(f"{'':10s} {'wall s':>8s} {'peak RSS':>10s}")
    for name, ms in results.items():
        print(f"{name:10s} {statistics.median(m.wall for m in ms):8.2f} "
              f"{human_bytes(statistics.median(m.peak_rss for m in ms)):>10s}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=1, help="multiplies the 1,000 entities")
    parser.add_argument("--runs", type=int, default=3, help="rounds; each runs all three")
    parser.add_argument("--only", nargs="+", choices=CONTENDERS + FLOORS, default=list(CONTENDERS),
                        help="which to run (default: product duckdb pandas; polars is a bare-script floor)")
    parser.add_argument("--workdir", type=Path, help="where the store goes (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated store")
    parser.add_argument("--layout", choices=("daily", "single"), default="daily",
                        help="one Parquet file per day (default) or one file of 1M-row groups")
    parser.add_argument("--dagster-home", action="store_true",
                        help="run the product with DAGSTER_HOME set (a fresh instance, started "
                             "by one unmeasured run), so every run is recorded")
    parser.add_argument("--verify", choices=("first", "all"), default="first",
                        help="check the files of the first round (default) or of every round")
    args = parser.parse_args()

    entities = 1000 * args.scale
    with bench_session(args.workdir, f"store-x{args.scale}", args.keep, "bench-export-") as (
        workdir, store, endpoint
    ):
        t0 = time.perf_counter()
        if store.is_dir() and any(store.glob("*.parquet")):
            rows_in = pl.scan_parquet(store / "*.parquet").select(pl.len()).collect().item()
        else:
            rows_in = generate_store(store, entities)
        print(f"store: {rows_in:,} rows, {entities:,} entities x {DAYS} days x 15 min, "
              f"{sum(f.stat().st_size for f in store.glob('*.parquet')) / 2**20:,.0f} MiB "
              f"in {store} ({time.perf_counter() - t0:.1f} s)", flush=True)
        if args.layout == "single":
            single = workdir / f"store-x{args.scale}-single"
            if not (single / "metrics.parquet").is_file():
                single_file_store(store, single, 1_000_000)
            store = single
            print(f"layout: one file, 1M-row groups, in {store}", flush=True)
        request_path = workdir / "request.json"
        request_path.write_text(json.dumps(export_request(), indent=2))

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        env, s3 = bench_environment(endpoint, bucket, EXPORT_METRICS_PATH=str(store))

        def command(name: str, key: str) -> list[str]:
            if name == "product":
                return [sys.executable, "-m", "export_pipeline", "run", str(request_path)]
            return [sys.executable, str(HERE / f"ref_{name}.py"), str(store), bucket, key,
                    START.strftime(ISO), END.strftime(ISO)]

        product_env = env
        if args.dagster_home:
            home = Path(tempfile.mkdtemp(prefix="dagster-home-", dir=workdir))
            product_env = {**env, "DAGSTER_HOME": str(home)}
            measure(command("product", "warm-up"), product_env, ROOT)
            print(f"DAGSTER_HOME: {home} (one unmeasured run created the instance)", flush=True)

        results: dict[str, list[Measurement]] = {n: [] for n in args.only}
        rows_out = None
        for round_ in range(args.runs):
            order = args.only[round_ % len(args.only):] + args.only[:round_ % len(args.only)]
            prints = {}
            for name in order:
                m = measure(command(name, f"ref/{name}-{round_}.csv"),
                            product_env if name == "product" else env, ROOT)
                results[name].append(m)
                print(f"  round {round_ + 1} {name:8s} {m.wall:7.2f} s  "
                      f"{human_bytes(m.peak_rss):>10s}", flush=True)
            if args.verify == "all" or round_ == 0:
                for name in order:
                    m = results[name][-1]
                    local = workdir / f"check-{name}.csv"
                    download(m.url, local)
                    prints[name] = fingerprint(local)
                    local.unlink()
                if len(set(prints.values())) != 1:
                    print(f"MISMATCH: the files differ: {prints}", file=sys.stderr)
                    return 1
                rows_out = next(iter(prints.values()))[0]
                print(f"  round {round_ + 1}: the {len(prints)} files hold the same "
                      f"{rows_out:,} rows in the same order", flush=True)
            for name in order:
                s3.delete_object(Bucket=bucket, Key=results[name][-1].key)

        print(f"\n{rows_in:,} store rows -> {rows_out:,} export rows; medians of {args.runs} "
              f"alternating runs, rows/s = store rows / wall time")
        print(f"{'':10s} {'wall s':>8s} {'peak RSS':>10s} {'rows/s':>12s}")
        medians = {}
        for name, ms in results.items():
            wall = statistics.median(m.wall for m in ms)
            rss = statistics.median(m.peak_rss for m in ms)
            medians[name] = (wall, rss)
            print(f"{name:10s} {wall:8.2f} {human_bytes(rss):>10s} {rows_in / wall:12,.0f}")
        if "product" in medians:
            for ref in (*CONTENDERS[1:], *FLOORS):
                if ref in medians:
                    ratios = [p.wall / r.wall for p, r in zip(results["product"], results[ref])]
                    mem = [p.peak_rss / r.peak_rss for p, r in zip(results["product"], results[ref])]
                    print(f"product/{ref}: wall {statistics.median(ratios):.2f}x "
                          f"(median of per-round ratios; {medians['product'][0] / medians[ref][0]:.2f}x "
                          f"of medians), peak RSS {statistics.median(mem):.2f}x")
        return 0


if __name__ == "__main__":
    sys.exit(main())
