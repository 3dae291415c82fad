"""Ctrl-C and SIGTERM sent to a real ``export-pipeline run`` at each phase of an export: one
line, the shell's status for the signal, no upload left open and nothing at the final key; a
run recorded in ``DAGSTER_HOME`` ends canceled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from export_pipeline.orchestration.cli_instance import LOCK_FILE
from export_pipeline_tests.support.helpers import all_objects, write_store

MiB = 1024 * 1024
DAYS = 14
ENTITIES = 60

REQUEST = {
    "csvFormat": {
        "columns": [{"heading": "Date"}, {"heading": "Entity"},
                    {"heading": "Entries", "metricId": "m", "fetchValue": "entries"}],
        "sortBy": [1, 0],
        "rowFilters": ["entity"],
    },
    "metricRequests": [{"metricId": "m", "start": "2024-01-01T00:00:00Z",
                        "end": f"2024-01-{DAYS:02d}T23:59:59Z", "aggregationPeriod": "minute"}],
}


@pytest.fixture(scope="module")
def minute_store(tmp_path_factory) -> Path:
    """A store whose minute-by-minute export is about 50 MB of CSV: ten 5 MiB parts."""
    stamps = pl.datetime_range(datetime(2024, 1, 1), datetime(2024, 1, DAYS, 23, 59), "1m",
                               eager=True, time_zone="UTC")
    entities = pl.DataFrame({"entity_id": [f"entity-{i:04d}" for i in range(ENTITIES)]})
    frame = pl.DataFrame({"timestamp": stamps}).join(entities, how="cross").with_columns(
        entity_type=pl.lit("location"), entries=(pl.int_range(pl.len()) % 97).cast(pl.Int64),
    )
    return write_store(tmp_path_factory.mktemp("minute-store"), frame, files=4)


@pytest.fixture
def env(minute_store, bucket, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(EXPORT_METRICS_PATH=str(minute_store), EXPORT_PART_SIZE=str(5 * MiB))
    return env


@pytest.fixture
def request_file(tmp_path) -> str:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(REQUEST))
    return str(path)


def start(request_file: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "export_pipeline", "run", request_file],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def catches_sigterm(pid: int) -> bool:
    """The process has its own SIGTERM handler (the kernel's view, /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        caught = next(line for line in status if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def wait_until(condition, process: subprocess.Popen, what: str) -> None:
    """A synchronisation with the process, not a timing: gives up after two minutes."""
    deadline = time.monotonic() + 120
    while not condition():
        assert process.poll() is None, f"the run ended before {what}: {process.communicate()}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.01)


def uploading(s3_client, bucket: str) -> bool:
    """The export's upload holds a part (the bucket check's own upload never does)."""
    for upload in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        try:
            parts = s3_client.list_parts(Bucket=bucket, Key=upload["Key"],
                                         UploadId=upload["UploadId"]).get("Parts", [])
        except s3_client.exceptions.NoSuchUpload:
            continue  # ended meanwhile (the bucket check's own upload)
        if parts:
            return True  # parts are billed from here on
    return False


def assert_stopped_by(process: subprocess.Popen, signum: int, stderr_before: str,
                      s3_client, bucket: str) -> None:
    out, err = process.communicate(timeout=120)
    err = stderr_before + err
    lines = err.strip().splitlines()
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, err
    assert lines[-1] == (f"interrupted by {name}: stopped before finishing "
                         "(any upload under way was aborted)")
    # Everything before it is progress (INFO lines, progress lines); no trace, no object repr,
    # no second message.
    assert all(" - INFO - " in line or line.startswith("progress: ") for line in lines[:-1]), err
    assert "Traceback" not in err and "Error" not in err and " object at 0x" not in err
    assert out == ""
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert all_objects(s3_client, bucket) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_as_the_command_starts(request_file, env, signum, s3_client, bucket):
    process = start(request_file, env)
    wait_until(lambda: catches_sigterm(process.pid), process, "its handlers")
    os.kill(process.pid, signum)
    assert_stopped_by(process, signum, "", s3_client, bucket)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_instance_is_created_leaves_it_whole(
    request_file, env, signum, s3_client, bucket, tmp_path
):
    """Sent as the command opens a fresh DAGSTER_HOME: the databases are finished first, so
    the next run on that home works."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")  # no databases yet
    env["DAGSTER_HOME"] = str(home)
    process = start(request_file, env)
    wait_until(lambda: (home / LOCK_FILE).exists(), process, "the instance being opened")
    os.kill(process.pid, signum)
    assert_stopped_by(process, signum, "", s3_client, bucket)

    done = subprocess.run([sys.executable, "-m", "export_pipeline", "run", request_file],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("after", ["1 fetches in 1 store reads", "fetched request0_window0"],
                         ids=["planned, fetching", "fetched, combining"])
def test_a_signal_during_the_run_steps(request_file, env, signum, after, s3_client, bucket):
    process = start(request_file, env)
    seen = ""
    for line in process.stderr:
        seen += line
        if after in line:
            break
    os.kill(process.pid, signum)
    assert_stopped_by(process, signum, seen, s3_client, bucket)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_upload_aborts_it(request_file, env, signum, s3_client, bucket):
    process = start(request_file, env)
    wait_until(lambda: uploading(s3_client, bucket), process, "parts uploaded")
    os.kill(process.pid, signum)
    assert_stopped_by(process, signum, "", s3_client, bucket)


def stored_runs(home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return list(instance.get_runs())


def run_events(home: Path, run_id: str) -> list[dg.DagsterEventType]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [r.dagster_event.event_type for r in instance.all_logs(run_id) if r.dagster_event]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("phase", ["fetching", "uploading"])
def test_a_stopped_run_is_recorded_canceled(
    request_file, env, signum, phase, s3_client, bucket, tmp_path
):
    """The user canceled the export: the run in ``DAGSTER_HOME`` ends canceled, not failed, so
    the canceled-run sensor sends its messages (``the run was canceled``), not the failure
    sensor."""
    home = tmp_path / "dagster_home"
    env["DAGSTER_HOME"] = str(home)
    process = start(request_file, env)
    seen = ""
    if phase == "fetching":
        for line in process.stderr:
            seen += line
            if "1 fetches in 1 store reads" in line:
                break
    else:
        wait_until(lambda: uploading(s3_client, bucket), process, "parts uploaded")
    os.kill(process.pid, signum)
    assert_stopped_by(process, signum, seen, s3_client, bucket)

    [run] = stored_runs(home)
    assert run.status is dg.DagsterRunStatus.CANCELED
    events = run_events(home, run.run_id)
    assert dg.DagsterEventType.RUN_CANCELING in events
    assert dg.DagsterEventType.RUN_CANCELED in events
    assert dg.DagsterEventType.RUN_FAILURE not in events


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_the_run_records_no_run(request_file, env, signum, s3_client, bucket,
                                                tmp_path):
    home = tmp_path / "dagster_home"
    env["DAGSTER_HOME"] = str(home)
    process = start(request_file, env)
    wait_until(lambda: catches_sigterm(process.pid), process, "its handlers")
    os.kill(process.pid, signum)
    assert_stopped_by(process, signum, "", s3_client, bucket)
    assert not (home / "dagster.yaml").exists() or stored_runs(home) == []


def test_a_killed_run_leaves_its_upload_open_and_the_sweep_clears_it(
    request_file, env, s3_client, bucket
):
    """SIGKILL cannot be caught: the parts stay, billed, until ``cleanup uploads`` (or the
    lifecycle rule, or the hourly schedule) aborts them."""
    process = start(request_file, env)
    wait_until(lambda: uploading(s3_client, bucket), process, "parts uploaded")
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    left = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"].startswith("exports/") for u in left] == [True]

    done = subprocess.run(
        [sys.executable, "-m", "export_pipeline", "cleanup", "uploads", "--older-than-hours", "0"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"aborted s3://{bucket}/{left[0]['Key']}" in done.stdout
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert all_objects(s3_client, bucket) == []
