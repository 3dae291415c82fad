"""Launch latency: how long from launching the seed request until its run is SUCCESS, through
each way a user starts one, beside the CLI's whole process for the same request.

    python benchmarks/bench_launch.py                        # 5 rounds, the local dagster.yaml
    python benchmarks/bench_launch.py --rounds 7 --dagster-yaml other.yaml --no-api

Everything is real and local: a moto S3 server, the demo metric store, one ``DAGSTER_HOME``
whose ``dagster.yaml`` is the one the CLI writes for local use (or ``--dagster-yaml``), a
``dg dev -w workspace.yaml`` (webserver, daemon, code server) and ``export-pipeline serve``
on it. Each round, in turn:

- ``launchpad``: ``launchPipelineExecution`` over GraphQL (the Launchpad's call) until the run
  is SUCCESS in the instance;
- ``cli``: ``export-pipeline run`` of the same request, the whole process;
- ``inbox``: the request file put into the inbox until its run is SUCCESS, from the put and
  from the sensor's pick-up (the run's creation); and until its result object reads
  ``complete``, which is what an inbox client waits for;
- ``api``: ``POST /v1/exports`` until the export reads ``complete``.

Rounds alternate the order of the paths, so load on the machine falls on all of them alike.
Every run launched through Dagster is broken down by its event log (enqueued, dequeued,
starting, started in its worker, first step, success), relative to the launch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from export_pipeline.demo.store import build_demo_store
from export_pipeline.service.api import EXPORT_ID_TAG
from export_pipeline_tests.support.helpers import free_port, start_moto_server, wait_for_http
from export_pipeline_tests.support.requests import SEED_ENVELOPE
from export_pipeline_tests.support.service import service_environment, unlimited_tenant

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_DEFAULT_REGION": "us-east-1"}
PATHS = ("launchpad", "cli", "inbox", "api")
MILESTONES = (  # event log entries of a run, in order; the worker's is its first engine event
    ("RUN_ENQUEUED", "enqueued"), ("RUN_STARTING", "starting"), ("ENGINE_EVENT", "worker up"),
    ("RUN_START", "started"), ("RESOURCE_INIT_SUCCESS", "resources"), ("STEP_START", "first step"),
    ("RUN_SUCCESS", "success"),
)


def _wait_result(s3_client, key: str, run_id: str, timeout: float = 300) -> float:
    """The wall-clock time the inbox result ``key`` was first seen ``complete`` for the run
    (polled every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = json.loads(s3_client.get_object(Bucket="bench", Key=key)["Body"].read())
        except s3_client.exceptions.NoSuchKey:
            result = {}
        if result.get("runId") == run_id and result.get("status") == "complete":
            return time.time()
        time.sleep(0.05)
    raise RuntimeError(f"{key} not complete after {timeout} s")


def _wait_success(instance, run_id: str, timeout: float = 300) -> float:
    """The wall-clock time the run was first seen SUCCESS (polled every 50 ms)."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status == dg.DagsterRunStatus.SUCCESS:
            return time.time()
        if run is not None and run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            raise RuntimeError(f"run {run_id} {run.status.value}")
        time.sleep(0.05)
    raise RuntimeError(f"run {run_id} not done after {timeout} s")


def _milestones(instance, run_id: str, origin: float) -> dict[str, float]:
    """Seconds from ``origin`` to each milestone of the run's event log (its first entry)."""
    found: dict[str, float] = {}
    from dagster import DagsterEventType

    names = {DagsterEventType[kind]: name for kind, name in MILESTONES}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.event_type not in names:
            continue
        if event.event_type is DagsterEventType.ENGINE_EVENT and "Started process" not in (
                (entry.user_message or "") + (event.message or "")):
            continue
        found.setdefault(names[event.event_type], entry.timestamp - origin)
    return found


def _new_run(instance, known: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in instance.get_runs(limit=5):
            if run.run_id not in known:
                return run.run_id
        time.sleep(0.05)
    raise RuntimeError("no run appeared")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5), after one warm-up")
    parser.add_argument("--dagster-yaml", type=Path, help="the instance file (default: the CLI's local one)")
    parser.add_argument("--no-api", action="store_true", help="leave out export-pipeline serve")
    parser.add_argument("--no-inbox", action="store_true", help="leave out the inbox")
    parser.add_argument("--sensor-interval", default="5",
                        help="EXPORT_SENSOR_INTERVAL_SECONDS (default 5; the product's is 30): every "
                        "sensor ticks this often, and its ticks compete with the runs for the CPU")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args()
    paths = [p for p in PATHS if not (p == "api" and args.no_api) and not (p == "inbox" and args.no_inbox)]
    seed = SEED_ENVELOPE
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        work = Path(tmp)
        try:
            moto, s3 = start_moto_server("bench")
            processes.append(moto)
            s3_client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1",
                                     aws_access_key_id="bench", aws_secret_access_key="bench")
            store = build_demo_store(work / "store")
            home = work / "dagster_home"
            request_file = work / "seed.json"
            request_file.write_text(json.dumps(seed))
            tenants, key = unlimited_tenant(work, "bench")
            env = service_environment(home, tenants, "bench", store, s3, CREDENTIALS)
            (home / "dagster.yaml").unlink()  # written below: the given file, or the CLI's
            if args.dagster_yaml:
                (home / "dagster.yaml").write_text(args.dagster_yaml.read_text())
            env["EXPORT_SENSOR_INTERVAL_SECONDS"] = args.sensor_interval
            # the CLI's first run writes the home's dagster.yaml when there is none, as for a user
            first = subprocess.run([sys.executable, "-m", "export_pipeline", "run", str(request_file)],
                                   env=env, cwd=str(ROOT), capture_output=True, text=True)
            if first.returncode:
                raise RuntimeError(first.stderr)
            print(f"instance file:\n{(home / 'dagster.yaml').read_text()}", flush=True)
            os.environ.update({k: v for k, v in env.items() if k.startswith(("AWS_", "EXPORT_", "DAGSTER_"))})

            ui_port = free_port()
            dev_log = open(work / "dg_dev.log", "w")
            processes.append(subprocess.Popen(
                ["dg", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(ui_port)],
                cwd=str(ROOT), env=env, stdout=dev_log, stderr=subprocess.STDOUT, start_new_session=True))
            wait_for_http(f"http://127.0.0.1:{ui_port}/server_info", processes[-1], 180, "dg dev")
            api = None
            if "api" in paths:
                api_port = free_port()
                api = f"http://127.0.0.1:{api_port}"
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "export_pipeline", "serve", "--port", str(api_port)],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(ROOT)))
                wait_for_http(f"{api}/openapi.json", processes[-1], 120, "export service")

            import dagster as dg
            from dagster_graphql import DagsterGraphQLClient

            instance = dg.DagsterInstance.get()
            graphql = DagsterGraphQLClient("127.0.0.1", port_number=ui_port)
            http = httpx.Client(base_url=api or "http://unused", timeout=60,
                                headers={"Authorization": f"Bearer {key}"})
            results: dict[str, list[float]] = {p: [] for p in paths}
            if "inbox" in paths:
                results["inbox result"] = []
            picked_result: list[float] = []
            picked: list[float] = []
            result_seen: list[float] = []  # from the put until the result reads complete
            breakdowns: dict[str, list[dict[str, float]]] = {p: [] for p in paths if p != "cli"}

            def launchpad() -> tuple[float, str | None]:
                started = time.time()
                run_id = graphql.submit_job_execution("export_job", run_config=seed)
                return _wait_success(instance, run_id) - started, run_id

            def cli() -> tuple[float, str | None]:
                started = time.time()
                done = subprocess.run([sys.executable, "-m", "export_pipeline", "run", str(request_file)],
                                      env=env, cwd=str(ROOT), capture_output=True, text=True)
                if done.returncode:
                    raise RuntimeError(done.stderr)
                return time.time() - started, None

            def inbox(round_: int) -> tuple[float, str | None]:
                known = {r.run_id for r in instance.get_runs(limit=20)}
                body = json.dumps(seed).encode()
                started = time.time()
                s3_client.put_object(Bucket="bench", Key=f"requests/round-{round_}.json", Body=body)
                run_id = _new_run(instance, known)
                took = _wait_success(instance, run_id) - started
                result_seen.append(_wait_result(s3_client, f"results/round-{round_}.json", run_id) - started)
                return took, run_id

            def api_post() -> tuple[float, str | None]:
                started = time.time()
                export_id = http.post("/v1/exports", json=seed).json()["id"]
                while (status := http.get(f"/v1/exports/{export_id}").json()["status"]) not in ("complete", "failed"):
                    time.sleep(0.05)
                if status != "complete":
                    raise RuntimeError(f"export {export_id} failed")
                done = time.time()
                known = [r for r in instance.get_runs(limit=5) if r.tags.get(EXPORT_ID_TAG) == export_id]
                return done - started, (known[0].run_id if known else None)

            for round_ in range(args.rounds + 1):  # the first round warms up, not counted
                order = paths if round_ % 2 else list(reversed(paths))
                line = []
                for path in order:
                    before = time.time()
                    took, run_id = inbox(round_) if path == "inbox" else {
                        "launchpad": launchpad, "cli": cli, "api": api_post}[path]()
                    line.append(f"{path} {took:.2f} s")
                    if not round_:  # the first run each launching process starts
                        if path == "inbox" and run_id:
                            created = instance.get_run_record_by_id(run_id).create_timestamp.timestamp()
                            line[-1] += f" ({took - (created - before):.2f} s from pick-up)"
                        continue
                    results[path].append(took)
                    if run_id:
                        marks = _milestones(instance, run_id, before)
                        created = instance.get_run_record_by_id(run_id).create_timestamp.timestamp()
                        marks["created"] = created - before
                        breakdowns[path].append(marks)
                        if path == "inbox":
                            picked.append(took - marks["created"])
                            results["inbox result"].append(result_seen[-1])
                            picked_result.append(result_seen[-1] - marks["created"])
                print(f"round {round_}{' (warm-up)' if not round_ else ''}: " + ", ".join(line), flush=True)

            cli_median = statistics.median(results["cli"])
            print(f"\nmedians of {args.rounds} rounds (seconds; ratio to the CLI's whole process):")
            for path in results:
                median = statistics.median(results[path])
                print(f"  {path:10s} {median:6.2f}  (min {min(results[path]):.2f}, max {max(results[path]):.2f})"
                      f"  {median / cli_median:.2f}x")
            if picked:
                median = statistics.median(picked)
                print(f"  {'inbox from pick-up':10s} {median:6.2f}  {median / cli_median:.2f}x")
                median = statistics.median(picked_result)
                print(f"  {'inbox result from pick-up':10s} {median:6.2f}  {median / cli_median:.2f}x")
            print("\nwhere the time goes (median seconds from the launch to each event of the run):")
            names = ["created"] + [name for _, name in MILESTONES]
            print("  " + " " * 10 + "".join(f"{n:>11s}" for n in names))
            for path, marks in breakdowns.items():
                cells = []
                for name in names:
                    values = [m[name] for m in marks if name in m]
                    cells.append(f"{statistics.median(values):11.2f}" if values else f"{'-':>11s}")
                print(f"  {path:10s}" + "".join(cells))
            if args.json:
                args.json.write_text(json.dumps({"results": results, "picked": picked,
                                                 "picked_result": picked_result,
                                                 "breakdowns": breakdowns}, indent=1))
        finally:
            for process in reversed(processes):
                try:
                    os.killpg(process.pid, 2) if process.args[0] == "dg" else process.terminate()
                    process.wait(timeout=30)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
