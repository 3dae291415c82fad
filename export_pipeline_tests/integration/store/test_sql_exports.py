"""The same export requests give byte-identical files from the Parquet folder, a DuckDB file and
a PostgreSQL server holding the same rows: every layout, a daylight-saving time zone, hourly
and daily buckets, decimation, delta, ranges cut into several 90-day windows, and decimal
measures (``numeric`` in PostgreSQL), whose sums are exact to the last cent. The export job
runs for real (moto S3 server), the source chosen by ``EXPORT_METRICS_SOURCE``."""

from __future__ import annotations

import copy
import io
import re
import zipfile
from collections import defaultdict
from datetime import timedelta

import polars as pl
import pytest

from export_pipeline_tests.support.helpers import utc, write_store
from export_pipeline_tests.support.requests import download, parse_csv, run_job
from export_pipeline_tests.support.sql_stores import load_duckdb

START, DAYS = utc(2024, 1, 1), 200
ENTITIES = ("site-a", "site-b", "zone-1")


def store_frame() -> pl.DataFrame:
    """Every 20 minutes for 200 days, three entities, two segments; integer and quarter-grid
    values (their sums are exact in any order, so the engines cannot differ by a last bit)."""
    ts = pl.datetime_range(START, START + pl.duration(days=DAYS), "20m", eager=True,
                           closed="left", time_zone="UTC")
    base = pl.DataFrame({"timestamp": ts}).with_row_index("i")
    parts = []
    for k, entity in enumerate(ENTITIES):
        for s, segment in enumerate(("new", "returning")):
            parts.append(base.with_columns(
                entity_id=pl.lit(entity), entity_type=pl.lit("zone" if k == 2 else "location"),
                segments=pl.lit(segment),
                entries=((pl.col("i").cast(pl.Int64) * (7 + k) + 13 * s) % 50),
                revenue=((pl.col("i").cast(pl.Int64) * (11 + s) + 5 * k) % 400).cast(pl.Float64) / 4,
            ))
    return pl.concat(parts).drop("i")


@pytest.fixture(scope="module")
def stores(tmp_path_factory, postgres):
    frame = store_frame()
    folder = tmp_path_factory.mktemp("sql-exports")
    return {
        "parquet": f"parquet://{write_store(folder / 'store', frame, files=4)}",
        "duckdb": load_duckdb(folder / "metrics.db", frame),
        "postgresql": postgres.load(frame),
    }


def columns(*measures: str, **extra) -> list[dict]:
    return [{"heading": "Date"}, {"heading": "Entity"}, *(
        {"heading": m.title(), "metricId": "m", "fetchValue": m, **extra} for m in measures
    )]


def body(start: str, end: str, period: str = "day", *, tz: str = "UTC", layout: str | None = None,
         measures=("entries", "revenue"), **request) -> dict:
    out = {
        "csvFormat": {"columns": columns(*measures), "sortBy": [0, 1], "rowFilters": ["entity"]},
        "metricRequests": [{"metricId": "m", "name": "m", "start": start, "end": end,
                            **({} if "decimation" in request else {"aggregationPeriod": period}),
                            **request}],
        "format": {"timezone": tz, **({"outputFormat": layout} if layout else {})},
    }
    return out


def decimated(tz: str) -> dict:
    out = body("2024-01-03T00:00:00Z", "2024-07-10T23:59:59Z", tz=tz,
               decimation={"ds": "1d", "dsf": "avg"})
    out["csvFormat"]["columns"] = [{"heading": "Date"}, {"heading": "Entity"}, *(
        {"heading": f, "metricId": "m", "fetchValue": "revenue", "dsf": f}
        for f in ("avg", "max", "min", "stddev")
    )]
    return out


def expanded() -> dict:
    out = body("2024-03-01T00:00:00Z", "2024-03-20T23:59:59Z", tz="America/New_York",
               facets=["segments"])
    out["format"]["template"] = "expanded"
    return out


def crosstab() -> dict:
    out = body("2024-03-05T00:00:00Z", "2024-03-15T23:59:59Z", tz="America/New_York",
               layout="crosstab", measures=("entries",))
    out["csvFormat"]["sortBy"] = []
    return out


REQUESTS = {
    "long-daily-ny-cut-windows": body("2024-01-01T00:00:00Z", "2024-07-15T23:59:59Z",
                                      tz="America/New_York", entityType="location"),
    "long-hourly-ny-dst": body("2024-03-09T00:00:00Z", "2024-03-12T23:59:59Z", "hour",
                               tz="America/New_York", entities=["site-a", "zone-1"]),
    "wide-hourly-utc": body("2024-06-01T00:00:00Z", "2024-06-03T23:59:59Z", "hour", layout="wide"),
    "crosstab-daily-ny": crosstab(),
    "expanded-facets-ny": expanded(),
    "decimation-ny-cut-windows": decimated("America/New_York"),
    "decimation-utc": decimated("UTC"),
    "delta-daily-ny": body("2024-02-20T00:00:00Z", "2024-03-20T23:59:59Z", tz="America/New_York",
                           transform="delta"),
}


def open_connections(postgres) -> int:
    with postgres.connect() as con:
        return con.execute("SELECT count(*) FROM pg_stat_activity "
                           "WHERE application_name = 'export_pipeline'").fetchone()[0]


@pytest.mark.parametrize("name", REQUESTS)
def test_the_same_file_from_every_source(name, stores, bucket, monkeypatch, postgres):
    files = {}
    for source, url in stores.items():
        monkeypatch.setenv("EXPORT_METRICS_SOURCE", url)
        result = run_job(copy.deepcopy(REQUESTS[name]))
        assert result.success, (source, result.get_step_failure_events())
        files[source] = download(result.output_for_node("materialize_export").signed_url)
    # The run's connection was closed when its resources were torn down.
    assert postgres.wait_until(lambda: open_connections(postgres) == 0, timeout=10)
    rows = parse_csv(files["parquet"])
    assert len(rows) > 2 and any(cell for row in rows[1:] for cell in row[1:])
    assert files["duckdb"] == files["parquet"]
    assert files["postgresql"] == files["parquet"]


@pytest.mark.parametrize("table, mentions", [
    ("missing_table", "has no table 'missing_table'"),
    ("metrics", "cannot connect to metric source"),
])
def test_a_broken_source_fails_the_plan_step_in_one_line(table, mentions, stores, postgres,
                                                         bucket, monkeypatch, s3_client):
    url = stores["postgresql"]
    if mentions.startswith("cannot connect"):
        from export_pipeline_tests.support.helpers import free_port

        url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
        monkeypatch.setenv("EXPORT_METRICS_RETRIES", "0")
    monkeypatch.setenv("EXPORT_METRICS_SOURCE", url)
    monkeypatch.setenv("EXPORT_METRICS_TABLE", table)
    result = run_job(copy.deepcopy(REQUESTS["wide-hourly-utc"]))
    assert not result.success
    failures = result.get_step_failure_events()
    assert [f.step_key for f in failures] == ["plan_export"]
    description = failures[0].step_failure_data.error.message
    assert mentions in description
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


# --- decimal measures -----------------------------------------------------------------------

DECIMAL_START = utc(2024, 3, 8)


def decimal_frame() -> pl.DataFrame:
    """Every 20 minutes for five days (across New York's daylight-saving change), three
    entities: ``amount`` (numeric(12, 2)) holds cents that floats do not add exactly, negative
    values and nulls; ``big`` (numeric(20, 2)) values whose totals pass the 15 to 17 digits a
    Float64 keeps."""
    rows = []
    for step in range(5 * 72):
        ts = DECIMAL_START + step * timedelta(minutes=20)
        for k, entity in enumerate(ENTITIES):
            i = step * 3 + k
            cents = [10, 20, 5, 95][i % 4]
            amount = None if i % 11 == 5 else f"{(i * 37 % 2000 - 700) // 100}.{cents:02d}"
            big = None if i % 13 == 7 else f"{123456789012345678 - i * 1_000_003}.{i % 100:02d}"
            rows.append((ts, entity, "zone" if k == 2 else "location", amount, big))
    frame = pl.DataFrame(rows, schema=["timestamp", "entity_id", "entity_type", "amount", "big"],
                         orient="row")
    return frame.with_columns(
        pl.col("amount").cast(pl.Decimal(12, 2)), pl.col("big").cast(pl.Decimal(20, 2))
    )


@pytest.fixture(scope="module")
def decimal_stores(tmp_path_factory, postgres):
    frame = decimal_frame()
    folder = tmp_path_factory.mktemp("sql-decimals")
    return frame, {
        "parquet": f"parquet://{write_store(folder / 'store', frame, files=3)}",
        "duckdb": load_duckdb(folder / "decimals.db", frame, "decimals"),
        "postgresql": postgres.load(frame, "decimals"),
    }


def decimal_body(period: str = "day", *, tz: str = "UTC", layout: str | None = None,
                 extension: str | None = None, **request) -> dict:
    out = body("2024-03-08T00:00:00Z", "2024-03-12T23:59:59Z", period, tz=tz, layout=layout,
               measures=("amount", "big"), **request)
    if extension:
        out["format"]["extension"] = extension
    if layout == "crosstab":
        out["csvFormat"]["sortBy"] = []
    return out


def decimal_decimated(dsf: str) -> dict:
    return decimal_body(tz="America/New_York", decimation={"ds": "1d", "dsf": dsf})


def decimal_total() -> dict:
    out = decimal_body(tz="America/New_York")
    out["csvFormat"]["columns"][1] = {"heading": "Kind", "field": "entity_type"}
    out["csvFormat"]["rowFilters"] = ["entity_type"]
    return out


DECIMAL_REQUESTS = {
    "long-daily-utc": decimal_body(),
    "long-hourly-ny-dst": decimal_body("hour", tz="America/New_York"),
    "sum-over-entities-ny": decimal_total(),
    "wide-daily": decimal_body(layout="wide"),
    "crosstab-daily-ny": decimal_body(tz="America/New_York", layout="crosstab"),
    "decimation-avg": decimal_decimated("avg"),
    "decimation-stddev": decimal_decimated("stddev"),
    "decimation-max": decimal_decimated("max"),
    "delta-daily": decimal_body(transform="delta"),
}


def export_files(request: dict, stores: dict, monkeypatch) -> dict[str, bytes]:
    monkeypatch.setenv("EXPORT_METRICS_TABLE", "decimals")
    files = {}
    for source, url in stores.items():
        monkeypatch.setenv("EXPORT_METRICS_SOURCE", url)
        result = run_job(copy.deepcopy(request))
        assert result.success, (source, result.get_step_failure_events())
        files[source] = download(result.output_for_node("materialize_export").signed_url)
    return files


@pytest.mark.parametrize("name", DECIMAL_REQUESTS)
def test_decimal_measures_give_the_same_file_from_every_source(name, decimal_stores, bucket, monkeypatch):
    files = export_files(DECIMAL_REQUESTS[name], decimal_stores[1], monkeypatch)
    rows = parse_csv(files["parquet"])
    assert len(rows) > 2 and any(cell for row in rows[1:] for cell in row[1:])
    assert files["duckdb"] == files["parquet"]
    assert files["postgresql"] == files["parquet"]


def day_sums(frame: pl.DataFrame) -> list[list[str]]:
    """The long daily file worked out with Python's decimals over the stored rows (exact: two
    decimals and fewer than 28 digits), each sum written with the measure's two decimals."""
    sums: dict[tuple, list] = defaultdict(lambda: [None, None])
    for ts, entity, _, amount, big in frame.iter_rows():
        cells = sums[(ts.strftime("%Y-%m-%d"), entity)]
        for j, value in enumerate((amount, big)):
            if value is not None:
                cells[j] = value if cells[j] is None else cells[j] + value
    return [["Date", "Entity", "Amount", "Big"]] + [
        [day, entity, *("" if v is None else f"{v:.2f}" for v in cells)]
        for (day, entity), cells in sorted(sums.items())
    ]


def test_decimal_sums_are_exact_to_the_cent(decimal_stores, bucket, monkeypatch):
    """0.10 + 0.20 is 0.30, and a total of 20 digits keeps its last cent."""
    frame, stores = decimal_stores
    expected = day_sums(frame)
    assert any(row[2].endswith("0") for row in expected[1:])  # the trailing zero of a scale-2 sum
    assert any(len(row[3].replace("-", "").replace(".", "")) > 17 for row in expected[1:])
    for source, data in export_files(decimal_body(), stores, monkeypatch).items():
        assert parse_csv(data) == expected, source


def test_decimal_xlsx_cells_hold_every_digit_from_every_source(decimal_stores, bucket, monkeypatch):
    """The workbook's cells are equal from every source and the file holds each sum's exact
    digits, as the CSV file does (Excel itself keeps 15 of them)."""
    import openpyxl

    frame, stores = decimal_stores
    files = export_files(decimal_body(extension="xlsx"), stores, monkeypatch)
    cells = {
        source: list(openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
        for source, data in files.items()
    }
    expected = day_sums(frame)
    assert len(cells["parquet"]) == len(expected)
    assert cells["duckdb"] == cells["parquet"] and cells["postgresql"] == cells["parquet"]
    for source, data in files.items():
        xml = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
        digits = re.findall(r'<c r="[CD]\d+"><v>([^<]*)</v>', xml)
        assert digits == [v for row in expected[1:] for v in row[2:] if v], source
