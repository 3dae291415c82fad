"""Time zones, decimation, delta and the pivoted layouts, checked against independent numbers."""

from __future__ import annotations

import copy
import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from export_pipeline.table import combine
from export_pipeline.planning import plan as planning
from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline.contract.validation import validate_document
from export_pipeline_tests.support.helpers import utc, write_store
from export_pipeline_tests.support.reference import (
    reference_crosstab,
    reference_csv_rows,
    reference_rows,
    reference_wide,
)
from export_pipeline_tests.support.requests import SEED_BODY, download, parse_csv, run_job

NY = ZoneInfo("America/New_York")


def export_rows(document) -> list[list[str]]:
    result = run_job(document)
    assert result.success, result.get_step_failure_events()
    return parse_csv(download(result.output_for_node("materialize_export").signed_url))


@pytest.fixture
def hourly_store(tmp_path, monkeypatch, bucket):
    """Value 1 at every UTC hour around both 2024 DST changes in New York, Chatham's spring
    change and the Azores' autumn one."""
    hours = pl.concat([
        pl.datetime_range(utc(2024, 3, 8), utc(2024, 3, 13), "1h", eager=True, closed="left", time_zone="UTC"),
        pl.datetime_range(utc(2024, 10, 31), utc(2024, 11, 6), "1h", eager=True, closed="left", time_zone="UTC"),
        pl.datetime_range(utc(2024, 9, 27), utc(2024, 9, 30), "1h", eager=True, closed="left", time_zone="UTC"),
        pl.datetime_range(utc(2024, 10, 25), utc(2024, 10, 30), "1h", eager=True, closed="left", time_zone="UTC"),
    ])
    frame = pl.DataFrame({"timestamp": hours}).with_columns(
        entity_id=pl.lit("sensor-1"), entity_type=pl.lit("sensor"), value=pl.lit(1, pl.Int64)
    )
    store = write_store(tmp_path / "store", frame)
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(store))
    return store


def value_body(start, end, period="day", **format_options):
    return {
        "csvFormat": {
            "columns": [{"heading": "Date"}, {"heading": "Value", "metricId": "v", "fetchValue": "value"}],
            "sortBy": [], "rowFilters": ["entity"],
        },
        "metricRequests": [{"metricId": "v", "start": start, "end": end, "aggregationPeriod": period}],
        **({"format": format_options} if format_options else {}),
    }


def test_dst_days_in_new_york_are_23_and_25_hours(hourly_store):
    rows = export_rows(value_body("2024-03-09T05:00:00Z", "2024-03-12T03:59:59Z", timezone="America/New_York"))
    assert rows[1:] == [["2024-03-09", "24"], ["2024-03-10", "23"], ["2024-03-11", "24"]]
    rows = export_rows(value_body("2024-11-02T04:00:00Z", "2024-11-05T04:59:59Z", timezone="America/New_York"))
    assert rows[1:] == [["2024-11-02", "24"], ["2024-11-03", "25"], ["2024-11-04", "24"]]
    # the same range in UTC: every day is 24 hours, and the default output is unchanged
    rows = export_rows(value_body("2024-03-09T00:00:00Z", "2024-03-11T23:59:59Z"))
    assert [r[1] for r in rows[1:]] == ["24", "24", "24"]


def test_a_day_whose_midnight_comes_twice_is_one_row_of_25_hours(hourly_store):
    """The Azores go from 01:00 back to 00:00 on 2024-10-27: one day, not an hour and a day."""
    rows = export_rows(value_body("2024-10-26T00:00:00Z", "2024-10-28T00:59:59Z", timezone="Atlantic/Azores"))
    assert rows[1:] == [["2024-10-26", "24"], ["2024-10-27", "25"]]


def test_an_hour_the_clock_jumps_into_starts_where_it_lands(hourly_store):
    """Chatham goes from 02:45 to 03:45: the reading at 03:45 is in an hour starting there,
    not in the next one (which would then hold two readings)."""
    rows = export_rows(value_body("2024-09-28T12:00:00Z", "2024-09-28T15:59:59Z", "hour", timezone="Pacific/Chatham"))
    assert rows[1:] == [
        ["2024-09-29T00:00:00+12:45", "1"], ["2024-09-29T01:00:00+12:45", "1"],
        ["2024-09-29T03:45:00+13:45", "1"], ["2024-09-29T04:00:00+13:45", "1"],
    ]


def test_subdaily_buckets_carry_their_local_offset(hourly_store):
    rows = export_rows(value_body("2024-03-10T06:00:00Z", "2024-03-10T07:59:59Z", "hour", timezone="America/New_York"))
    assert [r[0] for r in rows[1:]] == ["2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00"]


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    """Irregular float samples through 2024, two segments per timestamp (summed into one sample)."""
    n = 1500
    frame = pl.DataFrame({"i": range(n)}).with_columns(
        timestamp=pl.lit(utc(2024, 1, 1)) + pl.duration(minutes=pl.col("i") * 349 + (pl.col("i") * 7919) % 97),
    ).with_columns(
        entity_id=pl.lit("sensor-1"), entity_type=pl.lit("sensor"),
    )
    a = frame.with_columns(segment=pl.lit("a"), value=((pl.col("i") * 2654435761) % 1000).cast(pl.Float64) / 7)
    b = frame.with_columns(segment=pl.lit("b"), value=((pl.col("i") * 40503) % 500).cast(pl.Float64) / 3 - 50)
    store = write_store(tmp_path_factory.mktemp("samples"), pl.concat([a, b]).drop("i"), files=3)
    return store


FUNCTIONS = ["avg", "stddev", "variance", "min", "max", "sum"]


def decimation_body(ds: str, tz: str = "UTC", transform: str | None = None) -> dict:
    body = {
        "csvFormat": {
            "columns": [{"heading": "Date"}] + [
                {"heading": f, "metricId": "v", "fetchValue": "value", "dsf": f} for f in FUNCTIONS
            ],
            "sortBy": [], "rowFilters": ["entity"],
        },
        "metricRequests": [{
            "metricId": "v", "start": "2024-01-01T00:00:00Z", "end": "2024-12-31T23:59:59Z",
            "decimation": {"ds": ds, "dsf": "avg"},
        }],
        "format": {"timezone": tz},
    }
    if transform:
        body["metricRequests"][0]["transform"] = transform
    return body


def run_combine(store, body, max_span=None):
    source = ParquetMetricSource(store)
    request = validate_document(body, source.schema()).request
    plan = planning.plan_export(request, "t", **({"max_span": max_span} if max_span else {}))
    fetched = defaultdict(list)
    for task in plan.tasks:
        fetched[task.request_index].append(source.fetch(task.query))
    return plan, combine.combine(request, fetched)


def expected_rows(store, body) -> list[list]:
    """The reference's rows for ``body``: computed from the store's raw rows in plain Python."""
    return reference_rows(store, validate_document(body, ParquetMetricSource(store).schema()).request)


def assert_rows_match(got: list, want: list, rel: float = 1e-9) -> None:
    """Row by row: dates as their text, numbers within ``rel`` (floats summed in another
    order), empty cells empty. ``got`` may be CSV text or the table's typed values."""
    assert len(got) == len(want), (len(got), len(want))
    for got_row, want_row in zip(got, want):
        assert len(got_row) == len(want_row)
        for g, w in zip(got_row, want_row):
            if w is None:
                assert g in (None, ""), (got_row, want_row)
            elif isinstance(w, datetime):
                assert g in (w.date().isoformat(), w.isoformat()), (got_row, want_row)
            elif isinstance(w, str):
                assert g == w
            else:
                assert float(g) == pytest.approx(w, rel=rel, abs=1e-9), (got_row, want_row)


@pytest.mark.parametrize("ds, tz, month_step", [("1q", "UTC", 3), ("P3M", "America/New_York", 3), ("P1M", "Asia/Kolkata", 1)])
def test_decimation_across_window_cuts_equals_the_unsplit_values(sample_store, ds, tz, month_step):
    plan, split = run_combine(sample_store, decimation_body(ds, tz))
    assert len(plan.tasks) > 1  # the range guard cut the year
    if month_step == 3:
        # quarters are longer than the cap: some bucket is read by two windows
        cuts = [t.query.window.start for t in plan.tasks[1:]]
        assert any(c.astimezone(ZoneInfo(tz)).month not in (1, 4, 7, 10) for c in cuts)
    _, unsplit = run_combine(sample_store, decimation_body(ds, tz), max_span=timedelta(days=4000))
    assert split.frame.equals(unsplit.frame)
    # the same bits on a second run (float sums are added in a fixed order)
    assert split.frame.equals(run_combine(sample_store, decimation_body(ds, tz))[1].frame)
    want = expected_rows(sample_store, decimation_body(ds, tz))
    assert len(want) >= 12 // month_step  # every bucket of the year (and a local one before it)
    assert_rows_match(split.frame.rows(), want)


def test_a_filtered_column_averages_its_own_slice(sample_store):
    body = decimation_body("P1M")
    body["csvFormat"]["columns"].append(
        {"heading": "avg a", "metricId": "v", "fetchValue": "value", "dsf": "avg", "filter": {"segment": "a"}}
    )
    _, split = run_combine(sample_store, body)
    _, unsplit = run_combine(sample_store, body, max_span=timedelta(days=4000))
    assert split.frame.equals(unsplit.frame)
    frame = pl.concat([pl.read_parquet(p) for p in sorted(sample_store.glob("*.parquet"))])
    by_month: dict[str, list[float]] = defaultdict(list)
    for ts, segment, value in frame.select("timestamp", "segment", "value").iter_rows():
        if segment == "a":
            by_month[f"{ts.year}-{ts.month:02d}-01"].append(value)
    for month, got in zip(split.frame["c0"], split.frame["c7"]):
        assert got == pytest.approx(statistics.fmean(by_month[month]), rel=1e-12)


def test_decimation_end_to_end_in_the_job(sample_store, monkeypatch, bucket):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(sample_store))
    rows = export_rows(decimation_body("1q"))
    assert rows[0] == ["Date", *FUNCTIONS]
    assert [r[0] for r in rows[1:]] == ["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01"]
    assert_rows_match(rows[1:], expected_rows(sample_store, decimation_body("1q")))


def test_shorthand_decimation_matches_the_aggregation_period(sample_store):
    body = decimation_body("1d")
    body["csvFormat"]["columns"] = body["csvFormat"]["columns"][:1] + [
        {"heading": "sum", "metricId": "v", "fetchValue": "value"}
    ]
    body["metricRequests"][0]["decimation"]["dsf"] = "sum"
    plain = copy.deepcopy(body)
    del plain["metricRequests"][0]["decimation"]
    daily_sums = expected_rows(sample_store, plain)  # summed per day, no samples involved
    assert len(daily_sums) > 300
    _, decimated = run_combine(sample_store, body)
    assert_rows_match(decimated.frame.rows(), daily_sums, rel=1e-12)
    _, daily = run_combine(sample_store, plain)
    assert_rows_match(daily.frame.rows(), daily_sums, rel=1e-12)


def test_delta_is_the_difference_from_the_previous_bucket(sample_store):
    body = decimation_body("P1M", transform="delta")
    _, delta = run_combine(sample_store, body)
    want = expected_rows(sample_store, body)
    assert all(v is None for v in want[0][1:]) and all(v is not None for v in want[1][1:])
    assert_rows_match(delta.frame.rows(), want, rel=1e-9)


def run_combine_shared(store, body):
    """As the job runs it: one read per scan, its frame handed to every request of the scan."""
    source = ParquetMetricSource(store)
    request = validate_document(body, source.schema()).request
    plan = planning.plan_export(request, "t")
    items = []
    for scan in plan.scans:
        frame = source.fetch(scan.query)
        items += [(task, frame) for task in scan.tasks]
    fetched = defaultdict(list)
    for task, frame in sorted(items, key=lambda i: (i[0].request_index, i[0].window_index)):
        fetched[task.request_index].append(frame)
    return plan, combine.combine(request, fetched)


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_shared_reads_with_decimation_delta_and_a_time_zone_equal_separate_reads(sample_store, tz):
    """Plain and delta requests share a read; decimated (samples) ones share another; each
    window is read in slices cut on local days. The table equals one read per request."""
    year = {"start": "2024-01-01T00:00:00Z", "end": "2024-12-31T23:59:59Z"}
    body = {
        "csvFormat": {
            "columns": [
                {"heading": "Date"},
                {"heading": "sum", "metricId": "p", "fetchValue": "value"},
                {"heading": "sum a", "metricId": "p", "fetchValue": "value", "filter": {"segment": "a"}},
                {"heading": "sum b", "metricId": "q", "fetchValue": "value", "filter": {"segment": "b"}},
                {"heading": "delta", "metricId": "pd", "fetchValue": "value"},
                {"heading": "delta a", "metricId": "pd", "fetchValue": "value", "filter": {"segment": "a"}},
                {"heading": "avg", "metricId": "s", "fetchValue": "value"},
                {"heading": "max delta", "metricId": "sd", "fetchValue": "value", "dsf": "max"},
            ],
            "sortBy": [], "rowFilters": ["entity"],
        },
        "metricRequests": [
            {"metricId": "p", **year, "aggregationPeriod": "day"},
            {"metricId": "q", **year, "aggregationPeriod": "day"},
            {"metricId": "pd", **year, "aggregationPeriod": "day", "transform": "delta"},
            {"metricId": "s", **year, "decimation": {"ds": "1d", "dsf": "avg"}},
            {"metricId": "sd", **year, "decimation": {"ds": "1d", "dsf": "avg"}, "transform": "delta"},
        ],
        "format": {"timezone": tz},
    }
    plan, shared = run_combine_shared(sample_store, body)
    windows = len({t.window_index for t in plan.tasks})
    assert windows > 1 and len(plan.scans) == 2 * windows
    assert sorted(len(scan.tasks) for scan in plan.scans) == [2] * windows + [3] * windows
    _, separate = run_combine(sample_store, body)
    want = expected_rows(sample_store, body)
    assert len(want) > 300
    assert want[0][4] is None and want[1][4] is not None  # no bucket before the first
    assert_rows_match(shared.frame.rows(), want, rel=1e-9)
    assert_rows_match(separate.frame.rows(), want, rel=1e-9)


@pytest.fixture
def store_env(monkeypatch, demo_store_path, bucket):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    return demo_store_path


def layout_body(layout: str, **extra) -> dict:
    body = copy.deepcopy(SEED_BODY)
    body["csvFormat"]["columns"] = [
        {"heading": "Date"}, {"heading": "Entity"},
        {"heading": "Entries", "metricId": "entries-by-day", "fetchValue": "entries"},
        {"heading": "Exits", "metricId": "entries-by-day", "fetchValue": "exits"},
    ]
    body["metricRequests"][0]["entities"] = [
        "64a1b2c3d4e5f6a7b8c9d0e3", "64a1b2c3d4e5f6a7b8c9d0e1", "64a1b2c3d4e5f6a7b8c9d0e2",
    ]
    body["metricRequests"][0]["end"] = "2024-04-10T23:59:59Z"
    body["format"] = {"outputFormat": layout, **extra}
    return body


def layout_request(store, body):
    return validate_document(body, ParquetMetricSource(store).schema()).request


def test_wide_layout_equals_the_reference_pivot(store_env):
    body = layout_body("wide")
    wide_rows = export_rows(body)
    want = reference_wide(store_env, layout_request(store_env, body))
    entities = sorted(body["metricRequests"][0]["entities"])
    assert wide_rows[0] == ["Date"] + [f"{m} ({e})" for e in entities for m in ("Entries", "Exits")]
    assert wide_rows == want
    assert len(wide_rows) == 11 and all(cell != "" for row in wide_rows[1:] for cell in row)


def test_crosstab_has_a_column_per_day_and_a_row_per_entity(store_env):
    body = layout_body("crosstab")
    body["csvFormat"]["columns"] = body["csvFormat"]["columns"][:3]  # one metric: seed 003's shape
    body["csvFormat"]["sortBy"] = []
    rows = export_rows(body)
    days = [f"2024-04-{d:02d}" for d in range(1, 11)]
    assert rows[0] == ["Entity", *days]
    assert rows == reference_crosstab(store_env, layout_request(store_env, body))
    assert len(rows) == 4


def test_crosstab_with_two_metrics_and_empty_buckets(store_env):
    body = layout_body("crosstab")
    body["csvFormat"]["sortBy"] = []
    body["metricRequests"][0]["start"] = "2023-12-30T00:00:00Z"  # the store starts in 2024
    body["metricRequests"][0]["end"] = "2024-01-02T23:59:59Z"
    rows = export_rows(body)
    assert rows[0] == ["Entity", "Metric", "2023-12-30", "2023-12-31", "2024-01-01", "2024-01-02"]
    assert rows == reference_crosstab(store_env, layout_request(store_env, body))
    assert all(r[2:4] == ["", ""] and "" not in r[4:] for r in rows[1:])


def test_expanded_template_breaks_facets_out(store_env):
    body = layout_body("long")
    body["metricRequests"][0]["facets"] = ["segments"]
    body["format"]["template"] = "expanded"
    expanded = export_rows(body)
    assert expanded[0] == ["Date", "Entity", "Entries", "Exits", "segments"]
    assert expanded[1:] == reference_csv_rows(store_env, layout_request(store_env, body))
    assert len({r[4] for r in expanded[1:]}) == 3
