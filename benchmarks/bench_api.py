"""Export service benchmark: how long from ``POST /v1/exports`` to ``complete`` for the seed
request, and how many polling ``GET``s per second the service answers.

    python benchmarks/bench_api.py              # 5 rounds
    python benchmarks/bench_api.py --runs 9 --polls 300

Everything is real and local: a moto S3 server, the demo metric store, a Dagster home whose
runs execute at once (DefaultRunCoordinator + DefaultRunLauncher: each run is its own
process), and ``export-pipeline serve`` on 127.0.0.1. Rounds alternate a creation (POST, then a
GET every 50 ms until the status is ``complete``) with a burst of polls (GET of one complete
export, each signing a fresh URL; and GET of the list page); medians are reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from export_pipeline.demo.store import build_demo_store  # noqa: E402
from export_pipeline_tests.support.helpers import free_port, start_moto_server, wait_for_http  # noqa: E402
from export_pipeline_tests.support.service import service_environment, unlimited_tenant  # noqa: E402

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_DEFAULT_REGION": "us-east-1"}
DAGSTER_YAML = """\
run_coordinator: {module: dagster._core.run_coordinator, class: DefaultRunCoordinator}
run_launcher: {module: dagster._core.launcher, class: DefaultRunLauncher}
telemetry: {enabled: false}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--polls", type=int, default=200, help="GETs per polling burst (default 200)")
    args = parser.parse_args()
    seed = json.loads((ROOT / "export_pipeline" / "examples" / "seed_000_request.json").read_text())
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        work = Path(tmp)
        try:
            moto, s3 = start_moto_server("bench")
            processes.append(moto)
            store = build_demo_store(work / "store")
            tenants, key = unlimited_tenant(work, "bench")
            env = service_environment(work / "dagster_home", tenants, "bench", store, s3,
                                      CREDENTIALS, dagster_yaml=DAGSTER_YAML)
            api_port = free_port()
            api = f"http://127.0.0.1:{api_port}"
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "export_pipeline", "serve", "--port", str(api_port)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(ROOT)))
            wait_for_http(f"{api}/openapi.json", processes[-1], 120, "export service")
            latencies, gets, lists = [], [], []
            with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
                complete_id = None
                for round_ in range(args.runs + 1):  # the first round warms up, not counted
                    started = time.perf_counter()
                    export_id = client.post("/v1/exports", json=seed).json()["id"]
                    while (status := client.get(f"/v1/exports/{export_id}").json()["status"]) not in ("complete", "failed"):
                        time.sleep(0.05)
                    latency = time.perf_counter() - started
                    if status != "complete":
                        raise RuntimeError(f"export {export_id} failed")
                    complete_id = export_id
                    rates = []
                    for path in (f"/v1/exports/{complete_id}", "/v1/exports"):
                        started = time.perf_counter()
                        for _ in range(args.polls):
                            assert client.get(path).status_code == 200
                        rates.append(args.polls / (time.perf_counter() - started))
                    if round_:
                        latencies.append(latency)
                        gets.append(rates[0])
                        lists.append(rates[1])
                    print(f"round {round_}{' (warm-up)' if not round_ else ''}: POST->complete "
                          f"{latency:.2f} s, GET one {rates[0]:.0f}/s, GET list {rates[1]:.0f}/s", flush=True)
            print(f"\nmedians of {args.runs}: POST->complete {statistics.median(latencies):.2f} s "
                  f"(min {min(latencies):.2f}, max {max(latencies):.2f}); "
                  f"GET /v1/exports/{{id}} {statistics.median(gets):.0f}/s; "
                  f"GET /v1/exports {statistics.median(lists):.0f}/s")
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
