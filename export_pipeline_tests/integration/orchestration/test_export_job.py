"""The real export job end to end: Parquet store -> Dagster job -> S3 server -> signed URL."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from export_pipeline.orchestration.export_assets import request_asset_key
from export_pipeline.contract.validation import validate_document
from export_pipeline_tests.support.helpers import all_objects, utc, write_store
from export_pipeline_tests.support.reference import reference_csv_rows
from export_pipeline_tests.support.requests import SEED_BODY, SEED_ENVELOPE, download, parse_csv, run_job

@pytest.fixture
def store_env(monkeypatch, demo_store_path, bucket):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    return demo_store_path


def export_and_check(document, store: Path) -> tuple[dict, list[list[str]]]:
    result = run_job(document)
    assert result.success, result.get_step_failure_events()
    export = result.output_for_node("materialize_export")
    data = download(export.signed_url)
    rows = parse_csv(data)
    request = validate_document(document).request
    assert rows[0] == [c.heading for c in request.csv_format.columns]
    assert rows[1:] == reference_csv_rows(store, request)
    assert export.rows == len(rows) - 1
    assert export.bytes == len(data)
    return export, rows


def test_seed_body_verbatim(store_env):
    export, rows = export_and_check(SEED_BODY, store_env)
    assert export.rows == 30  # one row per day of April for the one entity
    assert rows[1][0] == "2024-04-01" and rows[-1][0] == "2024-04-30"
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in export.signed_url
    assert "X-Amz-Expires=3600" in export.signed_url


def test_seed_envelope_verbatim_uses_request_id(store_env, s3_client, bucket):
    export, _ = export_and_check(SEED_ENVELOPE, store_env)
    assert export.request_id == "req-csv-001"
    assert export.key.startswith("exports/req-csv-001/") and export.key.endswith(".csv")
    assert all_objects(s3_client, bucket) == [export.key]
    head = s3_client.head_object(Bucket=bucket, Key=export.key)
    assert head["ContentType"] == "text/csv; charset=utf-8"
    assert head["ContentLength"] == export.bytes


def test_launchpad_yaml_is_the_same_request(store_env):
    """The Launchpad takes the body pasted as YAML; it must mean the same as the JSON."""
    document = yaml.safe_load(yaml.safe_dump(SEED_BODY))
    export_and_check(document, store_env)


def test_materialization_metadata(store_env, bucket):
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(SEED_ENVELOPE, instance=instance)
    assert result.success
    export = result.output_for_node("materialize_export")
    event = instance.get_latest_materialization_event(request_asset_key("req-csv-001"))
    metadata = event.asset_materialization.metadata
    assert metadata["rows"].value == 30
    assert metadata["bytes"].value == export.bytes
    assert metadata["bucket"].value == bucket
    assert metadata["key"].value == export.key
    assert isinstance(metadata["signed_url"], dg.UrlMetadataValue)
    assert metadata["signed_url"].value == export.signed_url
    assert metadata["request_id"].value == "req-csv-001"
    windows = metadata["windows"].value
    assert windows == [{
        "key": "request0_window0", "metricId": "entries-by-day",
        "start": "2024-04-01T00:00:00+00:00", "end": "2024-04-30T23:59:59+00:00",
        "endInclusive": True, "aggregationPeriod": "day", "measures": ["entries"],
        "dimensions": ["segments"],
    }]


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_split_range_equals_unsplit(store_env, period):
    """200 days: three windows, cut on bucket boundaries; the file equals the unsplit sums."""
    document = {
        "csvFormat": {
            "columns": [
                {"heading": "Date"}, {"heading": "Entity"},
                {"heading": "Entries", "metricId": "m", "fetchValue": "entries"},
                {"heading": "Sales", "metricId": "m", "fetchValue": "sales_volume"},
            ],
            "sortBy": [1, 0],
            "rowFilters": ["entity"],
        },
        "metricRequests": [{
            "metricId": "m",
            "start": "2024-02-10T06:30:00Z",
            "end": "2024-08-27T23:59:59Z",
            "entityType": "location",
            "aggregationPeriod": period,
        }],
    }
    result = run_job(document)
    assert result.success
    plan = result.output_for_node("plan_export", "plan")
    assert len(plan.tasks) == 3
    for task in plan.tasks:
        assert task.query.window.end - task.query.window.start <= timedelta(days=90)
    export = result.output_for_node("materialize_export")
    rows = parse_csv(download(export.signed_url))
    request = validate_document(document).request
    assert rows[1:] == reference_csv_rows(store_env, request)
    keys = [(r[0], r[1]) for r in rows[1:]]
    assert len(keys) == len(set(keys)), "a bucket straddling a window cut came out twice"


def test_two_metric_requests_with_different_entities_and_windows(store_env):
    document = {
        "csvFormat": {
            "columns": [
                {"heading": "Date"}, {"heading": "Entity"},
                {"heading": "Entries", "metricId": "in", "fetchValue": "entries"},
                {"heading": "Exits", "metricId": "out", "fetchValue": "exits"},
                {"heading": "Clothing sales", "metricId": "in", "fetchValue": "sales_volume",
                 "filter": {"taxonomy": "Products:Clothing"}},
            ],
            "sortBy": [2, 0],
            "rowFilters": ["entity"],
        },
        "metricRequests": [
            {"metricId": "in", "start": "2024-03-01T00:00:00Z", "end": "2024-03-20T23:59:59Z",
             "entities": ["64a1b2c3d4e5f6a7b8c9d0e3", "64a1b2c3d4e5f6a7b8c9d0e1"]},
            {"metricId": "out", "start": "2024-03-10T00:00:00Z", "end": "2024-03-31T23:59:59Z",
             "entities": ["64a1b2c3d4e5f6a7b8c9d0e1", "zone-food-court"]},
        ],
    }
    _, rows = export_and_check(document, store_env)
    entities = {r[1] for r in rows[1:]}
    assert entities == {"64a1b2c3d4e5f6a7b8c9d0e3", "64a1b2c3d4e5f6a7b8c9d0e1", "zone-food-court"}
    zone_rows = [r for r in rows[1:] if r[1] == "zone-food-court"]
    assert zone_rows and all(r[2] == "" and r[3] != "" for r in zone_rows)
    # Rows without entries sort last (empty cells last).
    assert rows[-1][2] == ""


def test_dimension_values_with_commas_quotes_newlines_and_unicode(tmp_path, monkeypatch, bucket):
    awkward = ['Shoes, "red"', "line\nbreak", "Café Zürich – 東京", "plain", "cr\rlf"]
    frame = pl.DataFrame({
        "timestamp": [utc(2024, 5, 1, h) for h in range(len(awkward))],
        "entity_id": ["e,1", "e\"2", "e 3", "é4", "e5"],
        "entity_type": ["location"] * len(awkward),
        "label": awkward,
        "visits": [1, 2, 3, 4, 5],
    })
    store = write_store(tmp_path / "store", frame)
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(store))
    document = {
        "csvFormat": {
            "columns": [{"heading": "Date"}, {"heading": "Entity, id"},
                        {"heading": "Label", "field": "label"},
                        {"heading": "Visits \"total\"", "metricId": "v", "fetchValue": "visits"}],
            "sortBy": [3],
            "rowFilters": ["entity", "label"],
        },
        "metricRequests": [{"metricId": "v", "start": "2024-05-01T00:00:00Z",
                            "end": "2024-05-02T00:00:00Z"}],
    }
    document["csvFormat"]["columns"][1]["field"] = "entity"
    _, rows = export_and_check(document, store)
    assert rows[0] == ["Date", "Entity, id", "Label", 'Visits "total"']
    assert [r[2] for r in rows[1:]] == awkward
    assert [r[1] for r in rows[1:]] == ["e,1", "e\"2", "e 3", "é4", "e5"]


def test_invalid_request_fails_the_run_and_writes_nothing(store_env, s3_client, bucket):
    document = copy.deepcopy(SEED_BODY)
    document["csvFormat"]["sortBy"] = [7]
    document["metricRequests"][0]["facets"] = ["nope"]
    result = run_job(document)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "csvFormat.sortBy[0]: index 7 is out of range (2 columns)" in failure.description
    assert "metricRequests[0].facets[0]: unknown dimension 'nope'" in failure.description
    assert all_objects(s3_client, bucket) == []


def test_failed_fetch_leaves_no_object(tmp_path, monkeypatch, demo_store_path, s3_client, bucket):
    store = tmp_path / "store"
    store.mkdir()
    for file in sorted(demo_store_path.glob("*.parquet"))[:4]:
        (store / file.name).write_bytes(file.read_bytes())
    (store / "footfall-2024-03.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(store))
    result = run_job(SEED_ENVELOPE)
    assert not result.success
    assert all_objects(s3_client, bucket) == []


def test_upload_rejected_mid_way_leaves_no_object_and_no_parts(store_env, s3_client, bucket):
    """Parts below S3's 5 MiB minimum go up, then the server refuses to complete the upload:
    the export fails, and neither an object nor an open multipart upload is left behind.
    (``EXPORT_PART_SIZE`` refuses such a size, so the resource is built by hand.)"""
    from export_pipeline.orchestration.environment import export_resources
    from export_pipeline.orchestration.jobs import export_job
    from export_pipeline.orchestration.resources import ExportStorage, S3Connection

    resources = export_resources()
    resources["export_storage"] = ExportStorage(s3=S3Connection(), bucket=bucket, part_size_bytes=1024)
    job = dg.Definitions(jobs=[export_job], resources=resources).resolve_job_def("export_job")
    document = copy.deepcopy(SEED_BODY)
    document["metricRequests"][0].pop("entities")
    result = job.execute_in_process(
        run_config=document, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert "EntityTooSmall" in error.cause.message
    assert all_objects(s3_client, bucket) == []
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize("sort_by", [[0, 1], [1, 0], [2, 1], [5, 0]])
def test_requests_sharing_a_scan_equal_the_reference(store_env, sort_by):
    """Three requests over one window share one store read (two of them summed in one pass,
    one with a column filter), a fourth reads other entities; hourly over 20 days, so the
    window is read in slices. The file must equal the independent computation."""
    window = {"start": "2024-03-01T00:00:00Z", "end": "2024-03-20T23:59:59Z",
              "aggregationPeriod": "hour", "entityType": "location"}
    document = {
        "csvFormat": {
            "columns": [
                {"heading": "Date"}, {"heading": "Entity"},
                {"heading": "Entries", "metricId": "in", "fetchValue": "entries"},
                {"heading": "Exits", "metricId": "out", "fetchValue": "exits"},
                {"heading": "Sales", "metricId": "out", "fetchValue": "sales_volume"},
                {"heading": "Clothing", "metricId": "clothing", "fetchValue": "sales_volume",
                 "filter": {"taxonomy": "Products:Clothing"}},
                {"heading": "Two stores", "metricId": "two", "fetchValue": "entries"},
            ],
            "sortBy": sort_by,
            "rowFilters": ["entity"],
        },
        "metricRequests": [
            {"metricId": "in", **window},
            {"metricId": "out", **window},
            {"metricId": "clothing", **window},
            {"metricId": "two", **window,
             "entities": ["64a1b2c3d4e5f6a7b8c9d0e3", "64a1b2c3d4e5f6a7b8c9d0e1"]},
        ],
    }
    result = run_job(document)
    assert result.success
    plan = result.output_for_node("plan_export", "plan")
    assert [s.key for s in plan.scans] == [
        "request0_window0__request1_window0", "request2_window0", "request3_window0"
    ]
    export, rows = export_and_check(document, store_env)
    assert export.rows == 20 * 14 * 12  # 20 days x 14 open hours x 12 locations


def test_a_request_above_the_cost_limits_fails_its_plan_before_any_fetch(store_env, s3_client, bucket):
    document = copy.deepcopy(SEED_BODY)
    document["metricRequests"][0].update(
        start="1950-01-01T00:00:00Z", end="2049-12-31T23:59:59Z", aggregationPeriod="minute"
    )
    result = run_job(document)
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "plan_export"
    assert ("metricRequests: the long export would have about 52,596,000 rows"
            in failure.step_failure_data.user_failure_data.description)
    assert [e.step_key for e in result.get_step_success_events()] == []  # nothing fetched
    assert all_objects(s3_client, bucket) == []
