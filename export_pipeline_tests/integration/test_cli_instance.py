"""Command-line runs started at once on one fresh ``DAGSTER_HOME``: every one succeeds, the
instance stays whole for the next, and it lists them all."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg

from export_pipeline_tests.support.requests import SEED_BODY


def test_runs_started_at_once_on_a_fresh_home_all_succeed(tmp_path, demo_store_path, bucket):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")  # the databases do not exist yet
    request = tmp_path / "request.json"
    request.write_text(json.dumps(SEED_BODY))
    env = {**os.environ, "DAGSTER_HOME": str(home), "EXPORT_METRICS_PATH": str(demo_store_path)}
    command = [sys.executable, "-m", "export_pipeline", "run", str(request)]

    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(3)]
    outcomes = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outcomes):
        assert run.returncode == 0, err
    run_ids = {json.loads(out.strip().splitlines()[-1])["run_id"] for out, _ in outcomes}

    after = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert after.returncode == 0, after.stderr
    run_ids.add(json.loads(after.stdout.strip().splitlines()[-1])["run_id"])
    assert len(run_ids) == 4

    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs()
            assert {r.run_id for r in runs} == run_ids
            assert all(r.is_success for r in runs)
    finally:
        if previous is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = previous
