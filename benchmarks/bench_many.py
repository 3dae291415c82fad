"""Many exports at once: N seed-sized requests submitted together to a local deployment.

The deployment runs as the README runs it; the requests go through the export API or the
request inbox, and the benchmark waits until every one is complete.

    python benchmarks/bench_many.py                       # 100 through the API, then 100 through the inbox
    python benchmarks/bench_many.py --mode api --requests 50 --tenants 5
    python benchmarks/bench_many.py --launcher daemon     # dagster-daemon run instead of dg dev

The deployment: a moto S3 server, the demo store, a ``DAGSTER_HOME`` holding the instance file
the CLI writes on its first run (Dagster's defaults: SQLite storage, the QueuedRunCoordinator),
``dg dev -w workspace.yaml`` (or ``dagster-daemon run -w workspace.yaml``) and
``export-pipeline serve``, every setting at its default unless an option says otherwise.

Request ``i`` is the seed request for location ``i % 12`` of the demo store over month
``i // 12 % 12 + 1`` of 2024 (so a file swapped between requests is caught). The API mode POSTs
all of them from a thread pool, spread over ``--tenants`` tenants with the default rate limit and
quota, and polls each tenant's list; the inbox mode puts all the files at once and polls their
result objects. Reported: time from the first submission to the last ``complete``, exports per
minute, p50/p95 of each export's submission-to-complete latency (as its client saw it), the peak
RSS of every process of the deployment summed (sampled), the most run workers alive at once and
the largest one. Then every file is downloaded through its signed URL and compared, row by row,
with the request's daily sums computed here from the store's Parquet files with polars; every
request is checked to have exactly one run in the instance; and the deployment's logs are
searched for ``database is locked`` and tracebacks.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import httpx
import polars as pl
import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from export_pipeline.cli import INSTANCE_CONFIG  # noqa: E402
from export_pipeline.demo.store import LOCATIONS, build_demo_store  # noqa: E402
from export_pipeline_tests.support.helpers import free_port, start_moto_server, wait_for_http  # noqa: E402
from export_pipeline_tests.support.service import service_environment, tenants_yaml  # noqa: E402

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_DEFAULT_REGION": "us-east-1"}

BUCKET = "bench"
SEED = json.loads((ROOT / "export_pipeline" / "examples" / "seed_000_request.json").read_text())
EXPORT_ID_TAG = "export_pipeline/export_id"
INBOX_KEY_TAG = "export_pipeline/inbox_key"


def request_for(i: int) -> tuple[dict, str, datetime, datetime]:
    """The i-th request (an envelope with its own id), its entity and its month."""
    entity = LOCATIONS[i % len(LOCATIONS)]
    month = i // len(LOCATIONS) % 12 + 1
    start = datetime(2024, month, 1, tzinfo=timezone.utc)
    end = (start + timedelta(days=32)).replace(day=1) - timedelta(seconds=1)
    document = copy.deepcopy(SEED)
    document["data"]["id"] = f"many-{i:04d}"
    metric_request = document["data"]["body"]["metricRequests"][0]
    metric_request.update(entities=[entity], start=f"{start:%Y-%m-%dT%H:%M:%S.000Z}",
                          end=f"{end:%Y-%m-%dT%H:%M:%S.000Z}")
    return document, entity, start, end


def expected_rows(store: Path, entity: str, start: datetime, end: datetime) -> pl.DataFrame:
    """Date and the day's summed entries, straight from the store's Parquet files."""
    return (
        pl.scan_parquet(store / "**" / "*.parquet")
        .filter(pl.col("entity_id") == entity, pl.col("timestamp").is_between(start, end))
        .group_by(Date=pl.col("timestamp").dt.date().cast(pl.String))
        .agg(Entries=pl.col("entries").sum())
        .sort("Date")
        .collect()
    )


class TreeSampler(threading.Thread):
    """Every ``interval`` s: the summed RSS of the given processes and all their descendants,
    and the run workers among them (the code server starts each run as a ``multiprocessing``
    spawn child)."""

    def __init__(self, roots: list[int], interval: float = 0.2):
        super().__init__(daemon=True)
        self.roots, self.interval = roots, interval
        self.peak_rss = self.peak_workers = self.peak_worker_rss = 0
        self.worker_pids: set[int] = set()
        self._halt = threading.Event()
        self._commands: dict[int, bool] = {}

    def _is_worker(self, process: psutil.Process) -> bool:
        if process.pid not in self._commands:
            try:
                self._commands[process.pid] = "spawn_main" in " ".join(process.cmdline())
            except psutil.Error:
                return False
        return self._commands[process.pid]

    def sample(self) -> None:
        processes = []
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
                processes += [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
        rss = workers = 0
        for process in processes:
            try:
                size = process.memory_info().rss
            except psutil.Error:
                continue
            rss += size
            if self._is_worker(process):
                workers += 1
                self.worker_pids.add(process.pid)
                self.peak_worker_rss = max(self.peak_worker_rss, size)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_workers = max(self.peak_workers, workers)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join()


class Deployment:
    """The processes a user starts from the README, on loopback, in ``work``."""

    def __init__(self, work: Path, launcher: str):
        self.work, self.launcher = work, launcher
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, tenants: int, extra_env: dict[str, str], instance: dict) -> None:
        work, launcher = self.work, self.launcher
        moto, self.s3 = start_moto_server(BUCKET)
        self.processes.append(moto)
        self.store = build_demo_store(work / "store")
        self.home = work / "dagster_home"
        settings = yaml.safe_load(INSTANCE_CONFIG)
        for section, values in instance.items():
            if section == "run_coordinator":
                settings[section]["config"].update(values["config"])
            else:
                settings.setdefault(section, {}).update(values)
        instance_file = yaml.safe_dump(settings)
        self.keys: dict[str, str] = {}
        tenants_file = work / "tenants.json"
        tenants_file.write_text(tenants_yaml({f"tenant-{t:02d}": {} for t in range(tenants)}, self.keys))
        self.env = {**service_environment(self.home, tenants_file, BUCKET, self.store, self.s3,
                                          CREDENTIALS, dagster_yaml=instance_file), **extra_env}
        if launcher == "dg-dev":
            port = free_port()
            self._start("dg-dev", ["dg", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)])
            wait_for_http(f"http://127.0.0.1:{port}/server_info", self.processes[-1], 300, "dg dev")
        else:
            self._start("daemon", ["dagster-daemon", "run", "-w", "workspace.yaml"])
        api_port = free_port()
        self.api = f"http://127.0.0.1:{api_port}"
        self._start("serve", [sys.executable, "-m", "export_pipeline", "serve", "--port", str(api_port)])
        wait_for_http(f"{self.api}/openapi.json", self.processes[-1], 300, "export service")
        if launcher == "daemon":
            self._wait_for_daemon()

    def _start(self, name: str, command: list[str]) -> None:
        log = self.work / f"{name}.log"
        self.logs.append(log)
        self.processes.append(subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        ))

    def _wait_for_daemon(self) -> None:
        """Until the daemon's sensors have ticked once (its code location is loaded)."""
        deadline = time.monotonic() + 300
        while "request_inbox_sensor" not in (self.work / "daemon.log").read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError("the daemon did not start its sensors")
            time.sleep(1)

    def s3_client(self):
        return boto3.client("s3", endpoint_url=self.s3, region_name="us-east-1",
                            aws_access_key_id="bench", aws_secret_access_key="bench")

    def log_problems(self) -> dict[str, int]:
        text = "".join(log.read_text(errors="replace") for log in self.logs)
        return {needle: text.count(needle) for needle in (
            "database is locked", "Traceback", "DagsterUserCodeUnreachableError", '" 429', '" 503')}

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process is self.processes[0]:  # moto, in this session
                process.terminate()
                continue
            try:
                os.killpg(process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        for process in reversed(self.processes):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()


def submit_api(deployment: Deployment, documents: list[dict], threads: int) -> dict[int, dict]:
    """POST every document at once, ``i`` by tenant ``i % tenants``; retries a 429 after its
    ``Retry-After`` (counted). Returns, per request, its tenant, export id and submission time."""
    tenants = list(deployment.keys)
    retried = Counter()

    def post(i: int) -> tuple[int, dict]:
        tenant = tenants[i % len(tenants)]
        headers = {"Authorization": f"Bearer {deployment.keys[tenant]}"}
        submitted = time.monotonic()
        while True:
            answer = httpx.post(f"{deployment.api}/v1/exports", json=documents[i], headers=headers, timeout=300)
            if answer.status_code != 429:
                break
            retried[answer.json()["reason"]] += 1
            time.sleep(float(answer.headers.get("Retry-After", "1")))
        if answer.status_code != 202:
            raise RuntimeError(f"request {i}: {answer.status_code} {answer.text}")
        return i, {"tenant": tenant, "id": answer.json()["id"], "submitted": submitted,
                   "accepted": time.monotonic()}

    with ThreadPoolExecutor(threads) as pool:
        submitted = dict(pool.map(post, range(len(documents))))
    if retried:
        print(f"  POSTs answered 429 and retried: {dict(retried)}")
    return submitted


def wait_api(deployment: Deployment, submitted: dict[int, dict], timeout: float, poll: float) -> dict[int, dict]:
    """Poll each tenant's list until every export is complete or failed; when each was first
    seen so, its status and its signed URL."""
    by_id = {s["id"]: i for i, s in submitted.items()}
    done: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=deployment.api, timeout=120) as client:
        while len(done) < len(submitted):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(submitted) - len(done)} exports not finished after {timeout:.0f} s")
            for tenant, key in deployment.keys.items():
                answer = client.get("/v1/exports", params={"limit": 500},
                                    headers={"Authorization": f"Bearer {key}"})
                if answer.status_code == 429:
                    continue
                answer.raise_for_status()
                now = time.monotonic()
                for export in answer.json()["exports"]:
                    i = by_id.get(export["id"])
                    if i is not None and i not in done and export["status"] in ("complete", "failed"):
                        done[i] = {"finished": now, "status": export["status"], "url": export.get("url"),
                                   "errors": export.get("errors")}
            time.sleep(poll)
    return done


def submit_inbox(deployment: Deployment, documents: list[dict], threads: int) -> dict[int, dict]:
    client = deployment.s3_client()

    def put(i: int) -> tuple[int, dict]:
        submitted = time.monotonic()
        client.put_object(Bucket=BUCKET, Key=f"requests/many-{i:04d}.json", Body=json.dumps(documents[i]).encode())
        return i, {"key": f"requests/many-{i:04d}.json", "submitted": submitted, "accepted": time.monotonic()}

    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(put, range(len(documents))))


def wait_inbox(deployment: Deployment, submitted: dict[int, dict], timeout: float, poll: float) -> dict[int, dict]:
    """Poll the result objects (as a client does) until each is complete or failed."""
    client = deployment.s3_client()
    done: dict[int, dict] = {}
    deadline = time.monotonic() + timeout

    def result(i: int) -> tuple[int, dict | None]:
        try:
            body = client.get_object(Bucket=BUCKET, Key=f"results/many-{i:04d}.json")["Body"].read()
        except client.exceptions.NoSuchKey:
            return i, None
        return i, json.loads(body)

    with ThreadPoolExecutor(8) as pool:
        while len(done) < len(submitted):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(submitted) - len(done)} inbox results not final after {timeout:.0f} s")
            pending = [i for i in submitted if i not in done]
            for i, document in pool.map(result, pending):
                if document is not None and document["status"] in ("complete", "failed"):
                    done[i] = {"finished": time.monotonic(), "status": document["status"],
                               "url": (document.get("body") or [{}])[0].get("signedUrl"),
                               "errors": document.get("errors")}
            time.sleep(poll)
    return done


def runs_per_request(home: Path, mode: str, submitted: dict[int, dict]) -> tuple[Counter, int]:
    """How many runs the instance holds for each request (its export id or inbox key), and
    the most of them that were in progress at once (by their start and end times)."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    tag = EXPORT_ID_TAG if mode == "api" else INBOX_KEY_TAG
    wanted = {s["id"] if mode == "api" else s["key"]: i for i, s in submitted.items()}
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        records = instance.get_run_records()
    counts = Counter({i: 0 for i in submitted})
    edges = []
    for record in records:
        i = wanted.get(record.dagster_run.tags.get(tag))
        if i is not None:
            counts[i] += 1
            if record.start_time and record.end_time:
                edges += [(record.start_time, 1), (record.end_time, -1)]
    alive = most = 0
    for _, step in sorted(edges):
        alive += step
        most = max(most, alive)
    return counts, most


def verify(store: Path, requests: list[tuple], done: dict[int, dict], threads: int) -> list[str]:
    """Every file, downloaded through its signed URL, against the store's own sums."""

    def check(i: int) -> str | None:
        if done[i]["status"] != "complete":
            return f"request {i}: {done[i]['status']} {done[i]['errors']}"
        _, entity, start, end = requests[i]
        answer = httpx.get(done[i]["url"], timeout=60)
        if answer.status_code != 200:
            return f"request {i}: download answered {answer.status_code}"
        got = pl.read_csv(io.BytesIO(answer.content), schema_overrides={"Date": pl.String})
        want = expected_rows(store, entity, start, end)
        if got.height != want.height or got["Date"].to_list() != want["Date"].to_list():
            return f"request {i}: {got.height} rows, expected {want.height}"
        if got["Entries"].to_list() != want["Entries"].to_list():
            return f"request {i}: entries differ (sum {got['Entries'].sum()} != {want['Entries'].sum()})"
        return None

    with ThreadPoolExecutor(threads) as pool:
        return [p for p in pool.map(check, sorted(done)) if p]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(deployment: Deployment, mode: str, n: int, offset: int, args) -> dict:
    requests = [request_for(offset + i) for i in range(n)]
    documents = [r[0] for r in requests]
    if mode == "api":  # the API's POST body is the request itself, without the envelope
        documents = [d["data"]["body"] for d in documents]
    sampler = TreeSampler([p.pid for p in deployment.processes])
    sampler.sample()
    idle_rss = sampler.peak_rss
    sampler.peak_rss = 0
    sampler.start()
    started = time.monotonic()
    submit, wait = (submit_api, wait_api) if mode == "api" else (submit_inbox, wait_inbox)
    submitted = submit(deployment, documents, args.threads)
    all_submitted = time.monotonic()
    done = wait(deployment, submitted, args.timeout, args.poll)
    elapsed = max(d["finished"] for d in done.values()) - started
    sampler.stop()
    latencies = [done[i]["finished"] - submitted[i]["submitted"] for i in done]
    runs, runs_at_once = runs_per_request(deployment.home, mode, submitted)
    problems = verify(deployment.store, [(None, *r[1:]) for r in requests], done, args.threads)
    statuses = Counter(d["status"] for d in done.values())
    report = {
        "mode": mode, "requests": n, "submit_s": all_submitted - started, "elapsed_s": elapsed,
        "per_minute": n / elapsed * 60, "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95), "max_s": max(latencies),
        "idle_rss_mib": idle_rss / 2**20, "peak_rss_mib": sampler.peak_rss / 2**20,
        "runs_at_once": runs_at_once, "peak_workers": sampler.peak_workers,
        "workers_seen": len(sampler.worker_pids),
        "peak_worker_rss_mib": sampler.peak_worker_rss / 2**20, "statuses": dict(statuses),
        "runs_per_request": dict(Counter(runs.values())), "verify_problems": problems,
    }
    print(f"\n{mode}: {n} requests submitted in {report['submit_s']:.1f} s; last complete "
          f"{elapsed:.1f} s after the first submission: {report['per_minute']:.1f} exports/min; "
          f"latency p50 {report['p50_s']:.1f} s, p95 {report['p95_s']:.1f} s, max {report['max_s']:.1f} s")
    print(f"  statuses {dict(statuses)}; runs per request {report['runs_per_request']} "
          f"(count: requests); files checked against the store: "
          f"{n - len(problems)} right, {len(problems)} wrong")
    for problem in problems[:10]:
        print(f"    {problem}")
    print(f"  memory: deployment idle {report['idle_rss_mib']:.0f} MiB, peak {report['peak_rss_mib']:.0f} MiB "
          f"(every process summed); runs in progress at once at most {runs_at_once} (the instance's "
          f"start and end times); spawned worker processes alive at once at most "
          f"{sampler.peak_workers} ({len(sampler.worker_pids)} seen), the largest "
          f"{report['peak_worker_rss_mib']:.0f} MiB", flush=True)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="requests per mode (default 100)")
    parser.add_argument("--mode", choices=("api", "inbox", "both"), default="both")
    parser.add_argument("--tenants", type=int, default=10, help="API tenants the requests are spread over (default 10)")
    parser.add_argument("--launcher", choices=("dg-dev", "daemon"), default="dg-dev",
                        help="dg dev -w workspace.yaml (default) or dagster-daemon run -w workspace.yaml")
    parser.add_argument("--threads", type=int, default=16, help="client threads submitting (default 16)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between a client's polls (default 1)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the last export")
    parser.add_argument("--max-concurrent-runs", type=int,
                        help="the run coordinator's max_concurrent_runs in dagster.yaml (Dagster's default: 10)")
    parser.add_argument("--dequeue-workers", type=int,
                        help="launch queued runs from this many threads (the run coordinator's dequeue_use_threads, "
                        "dequeue_num_workers); Dagster's default launches one at a time")
    parser.add_argument("--sensor-workers", type=int,
                        help="create the runs a sensor tick requests from this many threads (sensors.use_threads, "
                        "num_workers: 1, num_submit_workers); Dagster's default creates one at a time")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for every process of the deployment (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, instance)")
    parser.add_argument("--json", type=Path, help="write the reports here as JSON")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the deployment on the way out
    extra_env = dict(item.split("=", 1) for item in args.env)
    modes = ["api", "inbox"] if args.mode == "both" else [args.mode]
    work = Path(tempfile.mkdtemp(prefix="bench-many-"))
    deployment = None
    reports = []
    try:
        print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        started = time.monotonic()
        deployment = Deployment(work, args.launcher)
        queue: dict = {}
        if args.max_concurrent_runs is not None:
            queue["max_concurrent_runs"] = args.max_concurrent_runs
        if args.dequeue_workers:
            queue.update(dequeue_use_threads=True, dequeue_num_workers=args.dequeue_workers)
        instance = {"run_coordinator": {"config": queue}}
        if args.sensor_workers:
            instance["sensors"] = {"use_threads": True, "num_workers": 1,
                                   "num_submit_workers": args.sensor_workers}
        deployment.start(args.tenants, extra_env, {k: v for k, v in instance.items() if v})
        print(f"dagster.yaml: {(deployment.home / 'dagster.yaml').read_text()!r}", flush=True)
        print(f"deployment up in {time.monotonic() - started:.1f} s ({args.launcher}, {work})", flush=True)
        for k, mode in enumerate(modes):
            reports.append(measure(deployment, mode, args.requests, k * args.requests, args))
        print(f"\nlogs: {deployment.log_problems()}; load average now "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.json:
            args.json.write_text(json.dumps(reports, indent=2))
    finally:
        if deployment is not None:
            deployment.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    ok = all(not r["verify_problems"] and set(r["runs_per_request"]) == {1} for r in reports)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
