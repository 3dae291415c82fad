"""How long one inbox sensor tick takes with thousands of request files in the inbox.

Starts a local S3 server (moto, in a subprocess), writes N small request files, then times
ticks of ``request_inbox_sensor`` on an ephemeral Dagster instance: the ticks of the first pass
(every file new: at most ``max_requests_per_tick`` validated and requested per tick) and a tick
of a later pass (every file old: listing only).

    python benchmarks/inbox_tick.py --files 5000
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=5000)
    args = parser.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        os.environ.update(
            AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
            AWS_DEFAULT_REGION="us-east-1", EXPORT_BUCKET="bench",
        )
        import boto3
        import dagster as dg

        from export_pipeline.demo.store import build_demo_store
        from export_pipeline.orchestration.definitions import build_definitions
        from export_pipeline.settings import demo_store_path

        if not demo_store_path().exists():
            build_demo_store(demo_store_path())
        client = boto3.client("s3")
        client.create_bucket(Bucket="bench")
        body = json.loads(
            (Path(__file__).parents[1] / "export_pipeline/examples/seed_000_request.json").read_text()
        )["data"]["body"]
        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(
                lambda i: client.put_object(
                    Bucket="bench", Key=f"requests/{i:06d}.json", Body=json.dumps(body).encode()
                ),
                range(args.files),
            ))
        print(f"wrote {args.files} request files in {time.perf_counter() - started:.1f} s")

        defs = build_definitions()
        sensor = defs.resolve_sensor_def("request_inbox_sensor")
        resources = {k: defs.resources[k] for k in ("request_inbox", "metric_source")}
        cursor = None
        with dg.instance_for_test() as instance:
            def tick():
                nonlocal cursor
                with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
                    t = time.perf_counter()
                    data = sensor.evaluate_tick(ctx)
                    elapsed = time.perf_counter() - t
                cursor = data.cursor
                sizes.append(len(cursor))
                return elapsed, len(data.run_requests), json.loads(cursor)

            times, requested, sizes = [], 0, []
            while True:
                elapsed, runs, state = tick()
                times.append(elapsed)
                requested += runs
                if state["after"] == "":
                    break
            print(
                f"first pass: {len(times)} ticks, {requested} runs requested, "
                f"slowest tick {max(times):.2f} s, mean {sum(times) / len(times):.2f} s"
            )
            elapsed, runs, _ = tick()
            print(f"a later pass over {args.files} old files: {elapsed:.2f} s, {runs} runs requested")
            print(f"largest cursor: {max(sizes) / 1024:.0f} KiB")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
