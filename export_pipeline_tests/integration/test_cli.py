"""The ``export-pipeline`` command as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from export_pipeline_tests.support.helpers import all_objects
from export_pipeline_tests.support.requests import SEED_BODY, SEED_ENVELOPE


@pytest.fixture
def cli_env(demo_store_path, bucket) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["EXPORT_METRICS_PATH"] = str(demo_store_path)
    return env


def cli(*args: str, env: dict, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "export_pipeline", *args],
        input=stdin, env=env, capture_output=True, text=True, timeout=120,
    )


def write(tmp_path: Path, document) -> str:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_run_prints_the_result_as_the_last_stdout_line(tmp_path, cli_env, bucket, s3_client):
    done = cli("run", write(tmp_path, SEED_ENVELOPE), env=cli_env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"run_id", "bucket", "key", "signedUrl", "rows", "bytes"} <= set(result)
    assert result["bucket"] == bucket and result["rows"] == 30
    assert result["key"].startswith("exports/req-csv-001/")
    with urllib.request.urlopen(result["signedUrl"], timeout=30) as response:
        body = response.read()
    assert body.startswith(b"Date,Entries\r\n2024-04-01,")
    assert len(body) == result["bytes"]
    assert "combined: 30 rows" in done.stderr  # progress goes to stderr


def test_run_reads_standard_input(cli_env):
    done = cli("run", "-", env=cli_env, stdin=json.dumps(SEED_BODY))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["rows"] == 30


def test_invalid_request_exits_2_with_every_problem_and_writes_nothing(
    tmp_path, cli_env, bucket, s3_client
):
    document = json.loads(json.dumps(SEED_BODY))
    document["csvFormat"]["sortBy"] = [{"column": 0}]
    document["metricRequests"][0]["aggregationPeriod"] = "fortnight"
    document["csvFormat"]["columns"][1]["fetchValue"] = "footfall"
    done = cli("run", write(tmp_path, document), env=cli_env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "csvFormat.sortBy[0]: sortBy takes column indices" in done.stderr
    assert "metricRequests[0].aggregationPeriod: 'fortnight' is not one of" in done.stderr
    assert "csvFormat.columns[1].fetchValue: unknown measure 'footfall'" in done.stderr
    assert done.stdout == ""
    assert all_objects(s3_client, bucket) == []


def test_unreadable_request_exits_2(tmp_path, cli_env):
    done = cli("run", str(tmp_path / "missing.json"), env=cli_env)
    assert done.returncode == 2 and "cannot read" in done.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json: [")
    done = cli("run", str(bad), env=cli_env)
    assert done.returncode == 2 and "neither JSON nor YAML" in done.stderr


def test_failed_export_exits_1_with_the_reason(tmp_path, cli_env):
    cli_env["EXPORT_BUCKET"] = "no-such-bucket-here"
    done = cli("run", write(tmp_path, SEED_BODY), env=cli_env)
    assert done.returncode == 1
    assert "NoSuchBucket" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_bucket_setting_exits_1(tmp_path, cli_env):
    del cli_env["EXPORT_BUCKET"]
    done = cli("run", write(tmp_path, SEED_BODY), env=cli_env)
    assert done.returncode == 1 and "EXPORT_BUCKET is not set" in done.stderr


def test_a_command_that_is_not_an_export_says_which_command_failed(tmp_path, cli_env):
    """``serve`` without its tenants file and ``seal`` without a key fail naming themselves,
    not as an "export failed"."""
    cli_env.pop("EXPORT_TENANTS_FILE", None)
    cli_env.pop("EXPORT_SEALING_KEY", None)
    served = cli("serve", "--port", "0", env=cli_env)
    assert served.returncode == 1
    assert served.stderr.startswith("serve failed: EXPORT_TENANTS_FILE"), served.stderr
    sealed = cli("seal", write(tmp_path, SEED_BODY), env=cli_env)
    assert sealed.returncode == 1 and sealed.stderr.startswith("seal failed: "), sealed.stderr


def test_validate_prints_the_plan_without_running(tmp_path, cli_env, bucket, s3_client):
    document = json.loads(json.dumps(SEED_ENVELOPE))
    document["data"]["body"]["metricRequests"][0]["start"] = "2024-01-01T00:00:00Z"
    done = cli("validate", write(tmp_path, document), env=cli_env)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["requestId"] == "req-csv-001"
    assert [f["key"] for f in plan["fetches"]] == ["request0_window0", "request0_window1"]
    assert plan["fetches"][0]["end"] == "2024-03-31T00:00:00+00:00"
    assert all_objects(s3_client, bucket) == []


def test_validate_into_a_closed_pipe_ends_quietly(tmp_path, cli_env):
    """`validate … | head` once head has gone: no traceback, the status of a SIGPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "export_pipeline", "validate", write(tmp_path, SEED_ENVELOPE)],
            env=cli_env, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141, done.stderr


def test_run_is_recorded_in_dagster_home(tmp_path, cli_env):
    home = tmp_path / "dagster_home"
    home.mkdir()
    cli_env["DAGSTER_HOME"] = str(home)
    done = cli("run", write(tmp_path, SEED_BODY), env=cli_env)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout.strip().splitlines()[-1])["run_id"]
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            run = instance.get_run_by_id(run_id)
            assert run is not None and run.is_success
    finally:
        if previous is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = previous


def test_a_run_in_a_fresh_dagster_home_prints_only_its_progress(tmp_path, cli_env):
    """No warning a user cannot act on: Dagster's "no dagster.yaml found" is answered by the
    file the CLI writes; what remains is the run's progress. That file keeps Dagster's storage
    in the home, has the daemon look for queued runs every second (Dagster's default is
    every 5) and turns telemetry, and with it Dagster's first-run notice, off."""
    from dagster._core.instance.ref import InstanceRef

    home = tmp_path / "fresh_home"
    home.mkdir()
    cli_env["DAGSTER_HOME"] = str(home)
    for attempt in ("first", "second"):
        done = cli("run", write(tmp_path, SEED_BODY), env=cli_env)
        assert done.returncode == 0, done.stderr
        run_id = json.loads(done.stdout.strip().splitlines()[-1])["run_id"]
        progress = re.compile(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - dagster - INFO - export_job - "
            + re.escape(run_id) + r" - (plan_export|fetch_metrics\[\w+\]|combine_metrics|"
            r"materialize_export) - "
        )
        bar = re.compile(r"progress: \d+/\d+ store reads(, [\d,]+ rows)?$")  # stderr is no terminal
        unexpected = [
            line for line in done.stderr.splitlines() if not (progress.match(line) or bar.match(line))
        ]
        assert unexpected == [], attempt
    assert (home / "dagster.yaml").read_text().startswith("# Dagster instance settings")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.run_coordinator.dequeue_use_threads
        assert instance.telemetry_enabled is False
        assert instance.get_run_by_id(run_id).is_success  # the runs are stored in the home
        assert str(home) in instance.root_directory


def test_the_cli_keeps_an_operator_s_own_dagster_yaml(tmp_path, cli_env):
    home = tmp_path / "configured_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    cli_env["DAGSTER_HOME"] = str(home)
    done = cli("run", write(tmp_path, SEED_BODY), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    assert "Telemetry" not in done.stderr and "dagster.yaml" not in done.stderr


def test_a_bad_setting_stops_the_cli_naming_the_variable(tmp_path, cli_env, bucket, s3_client):
    cli_env["EXPORT_URL_TTL"] = "an hour"
    done = cli("run", write(tmp_path, SEED_BODY), env=cli_env)
    assert done.returncode == 1
    assert "invalid settings: EXPORT_URL_TTL: Input should be a valid integer" in done.stderr
    assert "an hour" not in done.stderr and "Traceback" not in done.stderr
    assert all_objects(s3_client, bucket) == []


def test_demo_runs_end_to_end_on_its_own_server(tmp_path):
    """A new user's first command: no endpoint configured, so it brings its own server."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and not k.startswith("EXPORT_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "export_pipeline", "demo"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Exported 30 rows" in done.stdout
    assert "Date,Entries" in done.stdout
    # Its server stopped with it: a link to it would be dead, so none is shown.
    assert "http" not in done.stdout and "X-Amz-Signature" not in done.stdout
    assert "`export-pipeline demo --serve` keeps it running" in done.stdout
    assert (tmp_path / "data" / "export-pipeline" / "demo-store").is_dir()


def test_demo_serve_shows_a_link_that_works_while_it_serves(demo_store_path):
    import signal

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and not k.startswith("EXPORT_")}
    env["EXPORT_METRICS_PATH"] = str(demo_store_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "export_pipeline", "demo", "--serve"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        shown = []
        for line in process.stdout:
            shown.append(line)
            if "until Ctrl-C" in line:
                break
        url = next(line.strip() for line in shown if "X-Amz-Signature" in line)
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
            assert response.read().startswith(b"Date,Entries\r\n2024-04-01,")
        os.kill(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert err.strip().splitlines()[-1] == "stopped the local S3 server; its files and links are gone"
    assert "Traceback" not in err


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_run_with_reads_started_ahead_equals_the_reference(tmp_path, cli_env, demo_store_path, tz):
    """The CLI starts the store reads while Dagster starts; the file must still equal the
    independent computation (several requests, a shared scan, a split 90-day window, weeks
    cut in the request's time zone)."""
    from export_pipeline.contract.validation import validate_document
    from export_pipeline_tests.support.reference import reference_csv_rows
    from export_pipeline_tests.support.requests import parse_csv

    window = {"start": "2024-01-15T00:00:00Z", "end": "2024-06-10T23:59:59Z",
              "aggregationPeriod": "week"}
    document = {
        "csvFormat": {
            "columns": [{"heading": "Date"}, {"heading": "Entity"},
                        {"heading": "In", "metricId": "in", "fetchValue": "entries"},
                        {"heading": "Out", "metricId": "out", "fetchValue": "exits"},
                        {"heading": "Zone in", "metricId": "zones", "fetchValue": "entries"}],
            "sortBy": [1, 0],
            "rowFilters": ["entity"],
        },
        "metricRequests": [
            {"metricId": "in", **window}, {"metricId": "out", **window},
            {"metricId": "zones", **window, "entityType": "zone"},
        ],
        "format": {"timezone": tz},
    }
    done = cli("run", write(tmp_path, document), env=cli_env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    with urllib.request.urlopen(result["signedUrl"], timeout=30) as response:
        rows = parse_csv(response.read())
    request = validate_document(document).request
    assert rows[1:] == reference_csv_rows(demo_store_path, request)
    assert "in 4 store reads" in done.stderr  # 2 windows x (in+out shared, zones)
    assert done.stderr.count("rows (read ahead)") == 4  # the op took every read-ahead


def _with_sftp(password: str) -> dict:
    document = json.loads(json.dumps(SEED_ENVELOPE))
    document["data"]["body"]["destination"] = {
        "type": "sftp", "server": "sftp.example.com", "username": "u", "password": password,
        "path": "/in",
    }
    return document


def test_validate_shows_deliveries_without_credentials(tmp_path, cli_env):
    done = cli("validate", write(tmp_path, _with_sftp("hunter2-cli")), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deliveries"] == [
        {"type": "sftp", "server": "sftp.example.com", "username": "u", "path": "/in"}
    ]
    assert "hunter2-cli" not in done.stdout + done.stderr


def test_seal_prints_the_request_sealed_for_the_launchpad(tmp_path, cli_env):
    from export_pipeline.destinations.sealing import Sealer, binding

    key = cli("seal", "--new-key", env=cli_env).stdout.strip()
    missing = cli("seal", write(tmp_path, _with_sftp("hunter2-cli")), env=cli_env)
    assert missing.returncode == 1 and "EXPORT_SEALING_KEY is not set" in missing.stderr
    done = cli("seal", write(tmp_path, _with_sftp("hunter2-cli")),
               env={**cli_env, "EXPORT_SEALING_KEY": key})
    assert done.returncode == 0, done.stderr
    assert "hunter2-cli" not in done.stdout
    destination = json.loads(done.stdout)["data"]["body"]["destination"]
    assert Sealer(key).unseal(
        destination["password"], "", binding(destination, "password")
    ) == "hunter2-cli"


def test_run_loads_only_the_export_job_and_the_csv_writer(tmp_path, cli_env):
    """One export's start-up: not the code location's sensors, schedules and saved exports, nor
    the XLSX and PDF writers for a CSV, nor numpy (only decimations add with it)."""
    code = (
        "import json, sys; from export_pipeline.cli import main; "
        f"code = main(['run', {write(tmp_path, SEED_BODY)!r}]); "
        "print(json.dumps([code, sorted(sys.modules)]))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=cli_env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    code, modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 0
    assert "export_pipeline.formats.csv_writer" in modules
    for absent in (
        "export_pipeline.orchestration.definitions", "export_pipeline.orchestration.inbox_sensors",
        "export_pipeline.orchestration.notification_sensors", "export_pipeline.orchestration.saved_export_jobs",
        "export_pipeline.formats.pdf_report", "export_pipeline.formats.xlsx_writer", "reportlab",
        "numpy",
    ):
        assert absent not in modules, absent


def test_the_collector_runs_from_the_export_on_and_nothing_stays_frozen():
    """Off while modules load (the command line), on from the run on: ``demo --serve`` keeps
    a server running after it."""
    import gc

    from export_pipeline.cli import _long_lived_objects_frozen

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with _long_lived_objects_frozen():
            assert gc.isenabled()
            assert gc.get_freeze_count() > 0
        assert gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        if not was_enabled:
            gc.disable()


def _metric_request(**fields):
    def change(document):
        metric_request = document["metricRequests"][0]
        for key, value in fields.items():
            if value is None:
                metric_request.pop(key, None)
            else:
                metric_request[key] = value
    return change


def _column(index, **fields):
    return lambda document: document["csvFormat"]["columns"][index].update(fields)


def _crosstab(**fmt):
    """Fifty years of days as columns: 18,263 buckets and the entity."""
    def change(document):
        document["metricRequests"][0].update(start="1980-01-01T00:00:00Z", end="2029-12-31T23:59:59Z")
        document["csvFormat"]["columns"].insert(1, {"heading": "Entity"})
        document["format"] = {"outputFormat": "crosstab", **fmt}
    return change


@pytest.mark.parametrize("change, expected", [
    (_metric_request(end="9999-12-31T23:59:59-01:00"), "metricRequests[0].end: is outside the supported instants"),
    (_metric_request(start="0001-01-01T00:00:00+01:00"), "metricRequests[0].start: is outside the supported instants"),
    (_metric_request(end=None, period="P9999999999D"), "metricRequests[0].period: 'P9999999999D' is longer"),
    (_metric_request(end=None, period="P99999Y"), "metricRequests[0].period: 'P99999Y' is longer"),
    (_metric_request(end=None, period="P0D"), "metricRequests[0].period: 'P0D' is empty"),
    (_metric_request(aggregationPeriod=None, decimation={"ds": "P99999999Y"}),
     "metricRequests[0].decimation.ds: 'P99999999Y': a bucket is at most 100 years wide"),
    (_metric_request(decimation={"ds": "1h"}), "metricRequests[0].aggregationPeriod: give decimation"),
    (_column(1, heading="Entries\x00"), "csvFormat.columns[1].heading: must not contain control characters"),
    (_column(1, heading="x" * 1_000_000), "csvFormat.columns[1].heading: String should have at most 256"),
    (_metric_request(entities=["64a1b2c3d4e5f6a7b8c9d0e3\x00"]),
     "metricRequests[0].entities[0]: must not contain control characters"),
    (_metric_request(start="1950-01-01T00:00:00Z", end="2049-12-31T23:59:59Z", aggregationPeriod="minute"),
     "metricRequests: the long export would have about 52,596,000 rows"),
    (_crosstab(extension="xlsx"), "format.extension: the crosstab export would have 18,264 columns and an Excel sheet holds 16,384"),
    (_crosstab(extension="csv"), "format.outputFormat: the crosstab layout would have 18,264 columns"),
    (_metric_request(entities=[f"e{i:07d}" for i in range(20_000)]),
     "metricRequests[0].entities: 20,000 entity ids"),
    # 800,000 ids do not fit in a request document at all
    (_metric_request(entities=[f"e{i:07d}" for i in range(800_000)]), "is larger than 1048576 bytes"),
])
def test_requests_wrong_only_in_size_or_characters_exit_2_with_the_path(
    tmp_path, cli_env, bucket, s3_client, change, expected
):
    document = json.loads(json.dumps(SEED_BODY))
    change(document)
    done = cli("run", write(tmp_path, document), env=cli_env)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert all_objects(s3_client, bucket) == []


def test_the_cost_limits_are_settings(tmp_path, cli_env, bucket, s3_client):
    cli_env["EXPORT_MAX_ROWS"] = "29"  # the seed's 30 days of one entity
    done = cli("run", write(tmp_path, SEED_ENVELOPE), env=cli_env)
    assert done.returncode == 2, done.stderr
    assert "data.body.metricRequests: the long export would have about 30 rows" in done.stderr
    assert "at most 29 (EXPORT_MAX_ROWS)" in done.stderr
    assert all_objects(s3_client, bucket) == []


def test_a_request_file_that_is_not_utf8_exits_2_with_one_line(tmp_path, cli_env):
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps(SEED_BODY).replace("Entries", "Entr\u00e9es").encode("latin-1"))
    done = cli("run", str(path), env=cli_env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"invalid request: {path} is not UTF-8 text (byte "
        f"{json.dumps(SEED_BODY).index('Entries') + 4} is 0xe9)"
    ]
    assert done.stdout == ""


@pytest.mark.parametrize("text", ["[" * 200_000, "request: " + "[" * 200_000, "- " * 100_000],
                         ids=["json", "yaml-flow", "yaml-block"])
def test_deeply_nested_json_or_yaml_exits_2(tmp_path, cli_env, text):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    done = cli("validate", str(path), env=cli_env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
    assert "nested deeper than 32 levels" in done.stderr


def test_a_key_given_twice_exits_2_naming_its_path(tmp_path, cli_env):
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(SEED_ENVELOPE).replace('"sortBy": [0]', '"sortBy": [0], "sortBy": [1]'))
    done = cli("run", str(path), env=cli_env)
    assert done.returncode == 2
    assert "data.body.csvFormat.sortBy: is given twice" in done.stderr


def test_a_cli_run_validates_and_reads_the_store_once(monkeypatch, demo_store_path, bucket, s3_client):
    """In process: the run takes the request the command line validated and the reads it
    started; the store's schema is read once, each scan fetched once."""
    from export_pipeline.cli import prepare_run, run_export
    from export_pipeline_tests.support.helpers import CountingSource

    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    source = CountingSource(demo_store_path)
    prepared = prepare_run(SEED_ENVELOPE, source)
    response = run_export(SEED_ENVELOPE, prepared)
    assert response["run_id"] == prepared.run_id and response["rows"] == 30
    assert response["key"].startswith("exports/req-csv-001/")
    assert source.schema_reads == 1
    assert source.fetches == len(prepared.plan.scans)
