"""The SQL metric source on an embedded DuckDB file: the same frame as the Parquet source
(columns, dtypes, values, order) for every kind of bucket and zone, bucket starts checked
against plain-Python ``zoneinfo`` arithmetic, its schema and mapping rules, its errors, and
the queries compiling for other engines."""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from export_pipeline.contract.problems import InvalidRequest
from export_pipeline.contract.validation import validate_document
from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline.store.source import MetricQuery, MetricSourceError, StoreSchema
from export_pipeline.store.sql import ColumnMapping, SqlMetricSource, build_expression
from export_pipeline.timeline.periods import AggregationPeriod, Granularity
from export_pipeline.timeline.windows import Window
from export_pipeline_tests.support.helpers import utc, write_store
from export_pipeline_tests.support.sql_stores import load_duckdb
from export_pipeline_tests.unit.store.test_parquet import store_frame

P = AggregationPeriod


def random_frame(seed: int, start: datetime, days: int, rows: int) -> pl.DataFrame:
    """Rows at random seconds around two New York DST changes (and fractional seconds)."""
    rng = random.Random(seed)
    span = days * 86400
    out = []
    for _ in range(rows):
        ts = start + timedelta(seconds=rng.randrange(span), microseconds=rng.choice((0, 0, 999_999)))
        entity = rng.choice("abc")
        out.append((ts, entity, "zone" if entity == "c" else "location",
                    rng.choice(("new", "returning", None)), rng.choice(("18-24", "25-34")),
                    rng.randrange(100), rng.randrange(400) / 4))
    return store_frame(out)


FRAME = random_frame(7, utc(2024, 3, 1), 260, 4000)  # spans 2024-03-10 and 2024-11-03


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sql")
    parquet = ParquetMetricSource(write_store(folder / "store", FRAME))
    url = load_duckdb(folder / "metrics.db", FRAME)
    with SqlMetricSource(url) as sql:
        yield parquet, sql


def q(period, zone="UTC", samples=False, start=utc(2024, 3, 1), end=utc(2024, 11, 16),
      inclusive=True, **kw) -> MetricQuery:
    return MetricQuery(
        window=Window(start, end, end_inclusive=inclusive), period=period,
        entities=kw.get("entities"), entity_type=kw.get("entity_type"),
        dimensions=kw.get("dimensions", ("segments",)), measures=("entries", "revenue"),
        time_zone=zone, samples=samples,
    )


ZONES = ("UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Europe/London")
PERIODS = (
    P.minute, P.hour, P.day, P.week, P.month, P.quarter, P.year,
    Granularity(P.minute, 15), Granularity(P.hour, 2), Granularity(P.hour, 5),
    Granularity(P.day, 2), Granularity(P.week, 2), Granularity(P.month, 5),
)


def assert_same_frames(parquet, sql, queries) -> None:
    for query in queries:
        expected, got = parquet.fetch(query), sql.fetch(query)
        assert got.schema == expected.schema
        assert got.equals(expected), (query, got, expected)


def samples_and_filters(zone: str) -> list[MetricQuery]:
    return [
        q(P.hour, zone, samples=True),
        q(P.day, zone, entities=("a", "c"), dimensions=("segments", "age")),
        q(P.day, zone, entity_type="location", dimensions=(), inclusive=False,
          start=utc(2024, 11, 2, 4), end=utc(2024, 11, 4, 5)),
    ]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("period", PERIODS, ids=str)
def test_same_frame_as_parquet(sources, zone, period):
    assert_same_frames(*sources, [q(period, zone)])


@pytest.mark.parametrize("zone", ("UTC", "America/New_York"))
def test_samples_and_filters_match_parquet(sources, zone):
    assert_same_frames(*sources, samples_and_filters(zone))


@pytest.fixture(scope="module")
def minute_sources(tmp_path_factory):
    """A reading every minute around the clock changes of ``test_clock_changes``."""
    from export_pipeline_tests.unit.timeline.test_clock_changes import CHANGES

    rows = [
        (t, "a", "location", "new", "18-24", 1, 0.25)
        for _, start, end in CHANGES.values()
        for t in pl.datetime_range(start, end, "1m", eager=True, time_zone="UTC").to_list()
    ]
    frame = store_frame(sorted(set(rows)))
    folder = tmp_path_factory.mktemp("sql-minutes")
    parquet = ParquetMetricSource(write_store(folder / "store", frame))
    with SqlMetricSource(load_duckdb(folder / "metrics.db", frame)) as sql:
        yield parquet, sql


@pytest.mark.parametrize("width", ("1h", "7m", "40m", "1d", "1mo"))
def test_a_start_a_clock_change_skips_or_repeats_is_read_the_same_by_the_engine(minute_sources, width):
    """Chatham's skipped 03:00, the Azores' and Havana's repeated midnight and the others of
    ``test_clock_changes``: the engine starts each bucket where polars' reading, fixed, does."""
    from export_pipeline.timeline.periods import parse_granularity
    from export_pipeline_tests.unit.timeline.test_clock_changes import CHANGES

    queries = [q(parse_granularity(width), zone, start=start, end=end, dimensions=())
               for zone, start, end in CHANGES.values()]
    assert_same_frames(*minute_sources, queries)


def _python_bucket(ts: datetime, period: P, tz: ZoneInfo) -> datetime:
    local = ts.astimezone(tz)
    if period is P.hour:
        start = local.replace(minute=0, second=0, microsecond=0)
    else:
        start = datetime(local.year, local.month, local.day, tzinfo=tz)
    return start.astimezone(timezone.utc)


@pytest.mark.parametrize("period", (P.hour, P.day))
def test_new_york_buckets_against_zoneinfo(sources, period):
    """Sums per local hour/day across both DST changes, computed row by row with zoneinfo."""
    _, sql = sources
    tz = ZoneInfo("America/New_York")
    start, end = utc(2024, 3, 9), utc(2024, 3, 12)
    expected: dict = defaultdict(int)
    for row in FRAME.iter_rows(named=True):
        if start <= row["timestamp"] <= end:
            expected[(_python_bucket(row["timestamp"], period, tz), row["entity_id"])] += row["entries"]
    frame = sql.fetch(q(period, "America/New_York", start=start, end=end, dimensions=()))
    got = {(r["bucket"].astimezone(timezone.utc), r["entity_id"]): r["entries"]
           for r in frame.iter_rows(named=True)}
    assert got == dict(expected)
    if period is P.day:  # 23-hour day: the bucket after 2024-03-10 00:00 EST starts 23 h later
        days = sorted({b for b, _ in got})
        assert days.index(utc(2024, 3, 11, 4)) == days.index(utc(2024, 3, 10, 5)) + 1


def test_schema_and_mapping(tmp_path):
    renamed = FRAME.rename({"timestamp": "ts", "entity_id": "site", "entity_type": "kind"})
    url = load_duckdb(tmp_path / "m.db", renamed.with_columns(flag=pl.lit(True)), "visits")
    mapping = ColumnMapping.parse("timestamp=ts, entity_id=site, entity_type=kind")
    with SqlMetricSource(url, "visits", mapping) as source:
        assert source.schema() == StoreSchema(
            dimensions=("entity_type", "segments", "age"), measures=("entries", "revenue"))
        frame = source.fetch(q(P.day, dimensions=("entity_type",), entities=("a",)))
        assert frame.columns == ["bucket", "entity_id", "entity_type", "entries", "revenue"]
        assert frame["entries"].sum() == FRAME.filter(pl.col("entity_id") == "a")["entries"].sum()
    listed = ColumnMapping.parse("timestamp=ts,entity_id=site,entity_type=kind", "revenue", "age")
    with SqlMetricSource(url, "visits", listed) as source:
        assert source.schema() == StoreSchema(dimensions=("entity_type", "age"), measures=("revenue",))


def test_validation_names_unknown_measures_and_dimensions(sources):
    _, sql = sources
    body = {
        "csvFormat": {"columns": [{"heading": "Date"}, {"heading": "V", "metricId": "m",
                                   "fetchValue": "visits"}],
                      "rowFilters": ["entity", "channel"]},
        "metricRequests": [{"metricId": "m", "start": "2024-03-01T00:00:00Z",
                            "end": "2024-03-02T00:00:00Z", "aggregationPeriod": "day"}],
    }
    with pytest.raises(InvalidRequest) as caught:
        validate_document(body, sql.schema())
    text = str(caught.value)
    assert "csvFormat.columns[1].fetchValue" in text and "entries, revenue" in text
    assert "csvFormat.rowFilters[1]" in text and "segments" in text


@pytest.mark.parametrize(
    "change, table, mentions",
    [
        (lambda f: f, "missing", "has no table 'missing'"),
        (lambda f: f.with_columns(pl.col("timestamp").dt.strftime("%F")), "metrics",
         "'timestamp' (timestamp) must be a timestamp column"),
        (lambda f: f.with_columns(pl.col("entity_type").cast(pl.Categorical).to_physical()),
         "metrics", "'entity_type' (entity_type) must be a string column"),
    ],
)
def test_layout_errors_are_one_line(tmp_path, change, table, mentions):
    url = load_duckdb(tmp_path / "m.db", change(FRAME.head(5)))
    with SqlMetricSource(url, table) as source, pytest.raises(MetricSourceError) as caught:
        source.schema()
    assert mentions in str(caught.value) and "\n" not in str(caught.value)


def test_wrong_measure_type_is_named(tmp_path):
    url = load_duckdb(tmp_path / "m.db", FRAME.head(5))
    with SqlMetricSource(url, columns=ColumnMapping(measures=("segments",))) as source:
        with pytest.raises(MetricSourceError, match="measure 'segments' must be a numeric column"):
            source.schema()


def test_unreachable_sources_fail_in_one_line(tmp_path):
    with pytest.raises(MetricSourceError, match="cannot connect to") as caught:
        SqlMetricSource(f"duckdb://{tmp_path}/nowhere/x.db", retries=0).schema()
    assert "\n" not in str(caught.value)


def test_a_sql_source_without_ibis_says_what_to_install(tmp_path, monkeypatch):
    """An installation without the ``sql`` extra: one line naming the source and the extra."""
    monkeypatch.setitem(sys.modules, "ibis", None)
    with pytest.raises(MetricSourceError) as caught:
        SqlMetricSource(f"duckdb://{tmp_path}/m.db", retries=0).schema()
    assert str(caught.value) == (
        f"metric source duckdb://{tmp_path}/m.db#metrics: a SQL source needs ibis: "
        "pip install 'export-pipeline[sql]'"
    )


@pytest.mark.parametrize("url, mentions", [
    ("postgresql://u:secret@db.example/x", "must not carry a password"),
    ("postgresql://db.example/x?password=secret", "must not carry a password"),
    ("mysql://db.example/x", "use duckdb:///"),
    ("duckdb://", "needs a database file path"),
])
def test_bad_urls(url, mentions):
    with pytest.raises(MetricSourceError, match=mentions) as caught:
        SqlMetricSource(url)
    assert "secret" not in str(caught.value)


def test_bad_column_mapping():
    with pytest.raises(MetricSourceError, match="timestamp=COLUMN"):
        ColumnMapping.parse("time=ts")


@pytest.mark.parametrize("dialect", ("clickhouse", "bigquery", "snowflake", "trino", "mssql",
                                     "databricks", "mysql", "postgres", "duckdb"))
def test_queries_compile_for_other_engines(dialect):
    import ibis

    from export_pipeline.store.sql import _Layout

    table = ibis.table({"timestamp": "timestamp('UTC')", "entity_id": "string",
                        "entity_type": "string", "channel": "string", "visits": "int64"},
                       name="metrics")
    layout = _Layout.of(table.schema(), ColumnMapping(), "metrics")
    for query in (
        q(P.hour, "America/New_York", dimensions=("channel",)),
        q(P.month, "Europe/London", dimensions=("channel",)),
        q(P.minute, samples=True, dimensions=()),
    ):
        query = MetricQuery(**{**query.__dict__, "measures": ("visits",)})
        sql = ibis.to_sql(build_expression(table, layout, query), dialect=dialect)
        assert "GROUP BY" in sql.upper() and "visits" in sql


def test_a_query_without_measures_gives_its_keys(sources):
    parquet, sql = sources
    query = MetricQuery(**{**q(P.day, "America/New_York").__dict__, "measures": ()})
    assert_same_frames(parquet, sql, [query])


def test_decimal_measures_are_fetched_as_38_digit_decimals_of_their_scale():
    """A decimal's sum leaves the engine in the Parquet store's type (``sum_types``); one of no
    fixed scale (PostgreSQL's plain ``numeric``) or wider than 38 digits has no exact sum of
    one type: it is no measure, left out when the measures are found and refused by name
    when named."""
    import ibis

    from export_pipeline.store.sql import _Layout

    columns = {"timestamp": "timestamp('UTC')", "entity_id": "string", "entity_type": "string",
               "amount": "decimal(12, 2)"}
    layout = _Layout.of(ibis.schema(columns), ColumnMapping(), "metrics")
    assert layout.fetched_type("amount") == pl.Decimal(38, 2)
    odd = {**columns, "loose": "decimal", "huge": "decimal(50, 2)"}
    assert _Layout.of(ibis.schema(odd), ColumnMapping(), "metrics").measures == ("amount",)
    named = ColumnMapping(measures=("amount", "loose", "huge"))
    with pytest.raises(MetricSourceError, match=r"measure 'loose' is a decimal of no fixed scale.*"
                       r"measure 'huge' is a decimal of no fixed scale or over 38 digits"):
        _Layout.of(ibis.schema(odd), named, "metrics")
    assert _Layout.of(ibis.schema(odd), ColumnMapping(measures=("amount",)), "m").measures == ("amount",)


def test_a_decimal_sum_past_38_digits_is_not_retried(tmp_path):
    """DuckDB's overflow is no transient error: the export fails at once with the row named,
    on the connection it started with (a retry would have dropped it)."""
    import duckdb

    from export_pipeline.store.sql import is_transient
    from export_pipeline_tests.unit.store.test_sum_types import (
        OVERFLOWING, SumOutOfRange, document, export_csv)

    url = load_duckdb(tmp_path / "m.db", OVERFLOWING)
    with SqlMetricSource(url, retries=3, backoff_seconds=30) as sql:
        con = sql.connection()
        with pytest.raises(duckdb.OutOfRangeException) as raw:
            con.con.sql("SELECT sum(up) FROM metrics").fetchall()
        assert not is_transient(raw.value)
        with pytest.raises(SumOutOfRange, match="measure 'up': the sum "):
            export_csv(document(["up"]), sql)
        assert sql.connection() is con


def test_closing_the_source_stops_the_wide_read_of_an_overflowing_sum(tmp_path):
    """After DuckDB refuses a decimal sum the query is read again in wide form: closing the
    source (a run stopped or failed) interrupts that read in the engine as well, and the
    fetch fails cleanly. The view's sum overflows at once; its wide read would run for long."""
    import threading
    import time

    import duckdb

    most = "999999999999999999999999999999999999.99"
    path = tmp_path / "slow.db"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE VIEW metrics AS SELECT TIMESTAMPTZ '2024-03-01 00:00:00+00' + "
            "to_seconds(i % 1000) AS timestamp, 'e' AS entity_id, 't' AS entity_type, "
            f"CAST('{most}' AS DECIMAL(38, 2)) AS amount FROM range(10000000000) r(i)")
    query = MetricQuery(**{**q(P.day).__dict__, "dimensions": (), "measures": ("amount",)})
    source = SqlMetricSource(f"duckdb://{path}")
    source.schema()
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            source.fetch(query)
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    try:
        time.sleep(1)
        assert worker.is_alive(), outcome
        source.close()
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert isinstance(outcome[0], MetricSourceError) and "Interrupted" in str(outcome[0])
    finally:
        source.close()
