"""Saved exports as partitioned jobs on a real Dagster instance: each partition exports exactly
its own window (DST included) to its own key, a re-run replaces the file, a failed re-run
leaves it alone, and the schedule asks for the newest complete partition."""

from __future__ import annotations

import json
import copy
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
import pytest
import yaml

from export_pipeline.orchestration.definitions import build_definitions
from export_pipeline.orchestration.export_assets import saved_export_asset_key
from export_pipeline.orchestration.run_outcomes import (
    NAME_TAG, NOTIFICATION_TAG, WINDOW_TAG, export_response, failure_errors,
)
from export_pipeline.saved_exports.definitions import parse_saved_export
from export_pipeline.contract.validation import validate_document
from export_pipeline_tests.support.deliveries import SEALING_KEY
from export_pipeline_tests.support.helpers import all_objects, write_store
from export_pipeline_tests.support.reference import reference_csv_rows
from export_pipeline_tests.support.requests import SEED_BODY, parse_csv

BERLIN = ZoneInfo("Europe/Berlin")


def relative(body: dict) -> dict:
    body = copy.deepcopy(body)
    for metric_request in body["metricRequests"]:
        metric_request.pop("start", None), metric_request.pop("end", None)
    return body


def definitions(tmp_path, monkeypatch, *saved: dict) -> dg.Definitions:
    folder = tmp_path / "definitions"
    folder.mkdir(exist_ok=True)
    for item in saved:
        (folder / f"{item['name']}.yaml").write_text(yaml.safe_dump(item))
    monkeypatch.setenv("EXPORT_DEFINITIONS_PATH", str(folder))
    return build_definitions()


def read_object(s3_client, bucket, key) -> bytes:
    return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()


def check_partition(s3_client, bucket, store, definition, key, window) -> list[list[str]]:
    """The partition's file holds exactly what the reference computes for its window."""
    data = read_object(s3_client, bucket, key)
    rows = parse_csv(data)
    document = parse_saved_export(definition).request_for_window(*window)
    request = validate_document(document).request
    assert rows[0] == [c.heading for c in request.csv_format.columns]
    assert rows[1:] == reference_csv_rows(store, request)
    return rows


def test_daily_partitions_backfill_one_file_each(tmp_path, monkeypatch, demo_store_path, bucket, s3_client, instance):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    body = relative(SEED_BODY)
    body["csvFormat"]["columns"].append({"heading": "Entity", "field": "entity"})
    body["metricRequests"][0].pop("entities")
    body["metricRequests"][0]["aggregationPeriod"] = "hour"
    definition = {"name": "daily-footfall", "cadence": "daily", "start": "2024-03-30",
                  "timezone": "Europe/Berlin", "request": body}
    defs = definitions(tmp_path, monkeypatch, definition)
    job = defs.resolve_job_def("saved_export_daily_footfall")
    keys = ["2024-03-30", "2024-03-31", "2024-04-01"]  # 2024-03-31 is 23 hours long in Berlin
    assert job.partitions_def.get_partition_keys()[:3] == keys
    for partition in keys:
        result = job.execute_in_process(partition_key=partition, instance=instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run.tags["dagster/partition"] == partition
    assert sorted(all_objects(s3_client, bucket)) == [f"exports/daily-footfall/{k}.csv" for k in keys]
    hours = []
    for partition in keys:
        start = datetime.fromisoformat(partition).replace(tzinfo=BERLIN)
        end = (start + timedelta(days=1)).replace(tzinfo=BERLIN)
        rows = check_partition(
            s3_client, bucket, demo_store_path, definition,
            f"exports/daily-footfall/{partition}.csv", (start, end),
        )
        hours.append(len({r[0] for r in rows[1:]}))
        first_hour = datetime.fromisoformat(rows[1][0])
        assert first_hour >= start.astimezone(timezone.utc)
    # open hours 08:00-21:00 UTC; a Berlin day ends at 22:00 or 23:00 UTC: all 14 hours each day
    assert hours == [14, 14, 14]


def test_hourly_partitions_across_the_autumn_dst_change(tmp_path, monkeypatch, bucket, s3_client, instance):
    times = pl.datetime_range(
        datetime(2024, 10, 26, 22), datetime(2024, 10, 27, 3, 45), "15m", eager=True, time_zone="UTC"
    )
    store = write_store(tmp_path / "store", pl.DataFrame({
        "timestamp": times,
        "entity_id": ["e1"] * len(times),
        "entity_type": ["location"] * len(times),
        "entries": list(range(len(times))),
    }))
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(store))
    body = {
        "csvFormat": {"columns": [{"heading": "Hour", "field": "date"},
                                  {"heading": "Entries", "metricId": "m", "fetchValue": "entries"}],
                      "sortBy": [0], "rowFilters": ["entity"]},
        "metricRequests": [{"metricId": "m", "aggregationPeriod": "hour"}],
    }
    definition = {"name": "hourly", "cadence": "hourly", "start": "2024-10-27T00:00:00",
                  "timezone": "Europe/Berlin", "request": body}
    job = definitions(tmp_path, monkeypatch, definition).resolve_job_def("saved_export_hourly")
    keys = job.partitions_def.get_partition_keys()[1:5]
    assert keys == ["2024-10-27T01-00", "2024-10-27T02-00", "2024-10-27T02-00+0100", "2024-10-27T03-00"]
    for partition in keys:
        assert job.execute_in_process(partition_key=partition, instance=instance).success
    # buckets are cut and written in the definition's timezone: the repeated 02:00 comes twice,
    # once at +02:00 and once at +01:00
    expected_hours = ["2024-10-27T01:00:00+02:00", "2024-10-27T02:00:00+02:00",
                      "2024-10-27T02:00:00+01:00", "2024-10-27T03:00:00+01:00"]
    for partition, hour in zip(keys, expected_hours):
        window = job.partitions_def.time_window_for_partition_key(partition)
        rows = check_partition(s3_client, bucket, store, definition,
                               f"exports/hourly/{partition}.csv", (window.start, window.end))
        assert [r[0] for r in rows[1:]] == [hour]
        first = int((datetime.fromisoformat(hour) - datetime(2024, 10, 26, 22, tzinfo=timezone.utc)).total_seconds() // 900)
        assert rows[1][1] == str(sum(range(first, first + 4)))


def test_rerun_replaces_and_failed_rerun_keeps_the_file(tmp_path, monkeypatch, demo_store_path, bucket, s3_client, instance):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    definition = {"name": "weekly", "periodicity": "P1W", "type": "recurring",
                  "periodStart": int(datetime(2024, 4, 1, tzinfo=timezone.utc).timestamp()),
                  "request": relative(SEED_BODY)}
    job = definitions(tmp_path, monkeypatch, definition).resolve_job_def("saved_export_weekly")
    key = "exports/weekly/2024-04-08.csv"
    assert job.execute_in_process(partition_key="2024-04-08", instance=instance).success
    first = read_object(s3_client, bucket, key)
    assert [r[0] for r in parse_csv(first)[1:]] == [f"2024-04-{d:02d}" for d in range(8, 15)]
    # the store changes (late data, a correction): the re-run's file must be the new numbers
    changed = (
        pl.scan_parquet(sorted(demo_store_path.glob("*.parquet")))
        .filter(pl.col("timestamp").dt.month() == 4)
        .with_columns(entries=pl.col("entries") * 10 + 1)
        .collect()
    )
    store = write_store(tmp_path / "changed", changed)
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(store))
    assert job.execute_in_process(partition_key="2024-04-08", instance=instance).success
    second = read_object(s3_client, bucket, key)
    assert second != first
    window = job.partitions_def.time_window_for_partition_key("2024-04-08")
    rows = check_partition(s3_client, bucket, store, definition, key, (window.start, window.end))
    assert [int(r[1]) for r in rows[1:]] != [int(r[1]) for r in parse_csv(first)[1:]]
    assert all_objects(s3_client, bucket) == [key]

    monkeypatch.setenv("EXPORT_METRICS_PATH", str(tmp_path / "gone"))
    job = build_definitions().resolve_job_def("saved_export_weekly")
    result = job.execute_in_process(partition_key="2024-04-08", instance=instance, raise_on_error=False)
    assert not result.success
    assert read_object(s3_client, bucket, key) == second


def test_schedule_runs_the_newest_complete_partition(tmp_path, monkeypatch, bucket):
    definition = {"name": "monthly", "cadence": "monthly", "start": "2024-01-01",
                  "timezone": "America/New_York", "request": relative(SEED_BODY), "enabled": False}
    defs = definitions(tmp_path, monkeypatch, definition)
    schedule = defs.resolve_schedule_def("saved_export_monthly_schedule")
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    moment = datetime(2024, 5, 1, 0, 0, tzinfo=ZoneInfo("America/New_York"))
    with dg.build_schedule_context(scheduled_execution_time=moment) as context:
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2024-04-01"
    # the partition key alone determines the export: no request travels in run config
    job = defs.resolve_job_def("saved_export_monthly")
    assert "ops" not in (job.get_run_config_for_partition_key("2024-04-01") or {})


def test_a_broken_definition_stops_the_load_with_every_problem(tmp_path, monkeypatch, bucket):
    with pytest.raises(Exception) as caught:
        definitions(tmp_path, monkeypatch, {"name": "x", "cadence": "yearly", "start": "2024-01-01",
                                            "request": SEED_BODY})
    text = str(caught.value)
    assert "x.yaml: cadence" in text and "x.yaml: request.metricRequests[0].start" in text


def test_materializing_the_asset_exports_one_partition_with_its_history(
    tmp_path, monkeypatch, demo_store_path, bucket, s3_client, instance
):
    """The asset page's Materialize runs Dagster's own asset job with a partition key and no
    run config or job tags: the partition alone makes the export, and each partition keeps
    its own history."""
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    definition = {"name": "daily-entries", "cadence": "daily", "start": "2024-04-01",
                  "timezone": "Europe/Berlin", "request": relative(SEED_BODY),
                  "notification": {"messages": [{"policy": "onSuccess", "medium": "slack", "title": "t",
                                                  "text": "{{signedUrl}}"}]}}
    defs = definitions(tmp_path, monkeypatch, definition)
    key = saved_export_asset_key("daily-entries")
    assert defs.resolve_assets_def(key).partitions_def.get_partition_keys()[:2] == ["2024-04-01", "2024-04-02"]
    asset_job = defs.resolve_implicit_global_asset_job_def()
    run_ids = {}
    for partition in ["2024-04-01", "2024-04-02", "2024-04-01"]:
        result = asset_job.execute_in_process(partition_key=partition, instance=instance)
        assert result.success
        run_ids.setdefault(partition, []).append(result.run_id)
    assert sorted(all_objects(s3_client, bucket)) == [
        "exports/daily-entries/2024-04-01.csv", "exports/daily-entries/2024-04-02.csv"
    ]
    for partition in ["2024-04-01", "2024-04-02"]:
        start = datetime.fromisoformat(partition).replace(tzinfo=BERLIN)
        rows = check_partition(s3_client, bucket, demo_store_path, definition,
                               f"exports/daily-entries/{partition}.csv", (start, start + timedelta(days=1)))
        assert [r[0] for r in rows[1:]] == [partition]
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=10
        ).records
        assert sorted(r.run_id for r in records) == sorted(run_ids[partition])
        for record in records:
            metadata = record.asset_materialization.metadata
            assert metadata["key"].value == f"exports/daily-entries/{partition}.csv"
            assert metadata["rows"].value == len(rows) - 1
            response = export_response(instance, record.run_id)
            assert response["key"] == f"exports/daily-entries/{partition}.csv"
            # what the notification sensors read, though the run was not launched by the job
            tags = instance.get_run_by_id(record.run_id).tags
            assert tags[NAME_TAG] == "daily-entries"
            assert json.loads(tags[NOTIFICATION_TAG])["messages"][0]["text"] == "{{signedUrl}}"
            assert tags[WINDOW_TAG] == f"{start.isoformat()}/{(start + timedelta(days=1)).isoformat()}"
    # nothing recorded under the ad-hoc exports' keys
    assert [k for k in instance.get_asset_keys() if k != key] == []


def failed_step(instance, result) -> dg.DagsterEvent:
    [event] = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    return event.dagster_event


@pytest.mark.parametrize("wrapped, prefix", [(False, "request."), (True, "request.data.body.")])
def test_a_problem_found_as_the_period_runs_names_the_definition_files_path(
    tmp_path, monkeypatch, demo_store_path, bucket, instance, wrapped, prefix
):
    """The plan step checks the period's request against the store (a measure it lacks passes
    the load): its problems name the path in the definition file, whichever shape the file
    gave its request, and the file itself, not the envelope the run wraps the request in."""
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    body = relative(SEED_BODY)
    body["csvFormat"]["columns"].append({"heading": "Wrong", "metricId": "entries-by-day", "fetchValue": "nope"})
    definition = {"name": "daily", "cadence": "daily", "start": "2024-04-01",
                  "request": {"data": {"body": body}} if wrapped else body}
    job = definitions(tmp_path, monkeypatch, definition).resolve_job_def("saved_export_daily")
    result = job.execute_in_process(partition_key="2024-04-02", instance=instance, raise_on_error=False)
    assert not result.success
    failure = failed_step(instance, result).step_failure_data.user_failure_data
    [problem] = failure.metadata["problems"].value
    assert problem.startswith(f"{prefix}csvFormat.columns[2].fetchValue: unknown measure 'nope'")
    assert failure.description == f"invalid export request in daily.yaml:\n{problem}"
    [error] = failure_errors(result.get_step_failure_events(), None)
    assert error["path"] == f"{prefix}csvFormat.columns[2].fetchValue"


def test_a_refused_destination_of_a_saved_export_names_the_definition_files_path(
    tmp_path, monkeypatch, demo_store_path, bucket, instance
):
    """Problems found after the plan (a destination host the policy refuses) are named in the
    definition file too."""
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    monkeypatch.setenv("EXPORT_SEALING_KEY", SEALING_KEY)
    body = relative(SEED_BODY)
    body["destinations"] = [{"type": "sftp", "server": "10.0.0.1", "username": "u",
                             "password": "secret-password", "path": "/outbox"}]
    definition = {"name": "daily", "cadence": "daily", "start": "2024-04-01",
                  "request": {"data": {"body": body}}}
    job = definitions(tmp_path, monkeypatch, definition).resolve_job_def("saved_export_daily")
    result = job.execute_in_process(partition_key="2024-04-02", instance=instance, raise_on_error=False)
    assert not result.success
    [error] = failure_errors(result.get_step_failure_events(), None)
    assert error["path"] == "request.data.body.destinations[0]"
    assert "10.0.0.1" in error["message"]
