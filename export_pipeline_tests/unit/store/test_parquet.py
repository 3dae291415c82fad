"""The Parquet metric store: its schema, fetch() against an independent Python computation,
and a long window read in slices (cut on local bucket boundaries) giving the same frame as
one read."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from export_pipeline.store import parquet as parquet_source
from export_pipeline.store.source import MetricQuery, MetricSourceError, StoreSchema
from export_pipeline.store.parquet import ParquetMetricSource, _slices
from export_pipeline.timeline.periods import AggregationPeriod, Granularity
from export_pipeline.timeline.windows import Window
from export_pipeline_tests.support.helpers import utc, write_store

P = AggregationPeriod
UTC_TS = pl.Datetime("us", "UTC")
SCHEMA = {
    "timestamp": UTC_TS,
    "entity_id": pl.String,
    "entity_type": pl.String,
    "segments": pl.String,
    "age": pl.String,
    "entries": pl.Int64,
    "revenue": pl.Float64,
}


def store_frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def query(
    start: datetime,
    end: datetime,
    *,
    inclusive: bool = True,
    period: AggregationPeriod = P.day,
    entities: tuple[str, ...] | None = None,
    entity_type: str | None = None,
    dimensions: tuple[str, ...] = (),
    measures: tuple[str, ...] = ("entries",),
    time_zone: str = "UTC",
    samples: bool = False,
) -> MetricQuery:
    return MetricQuery(
        window=Window(start, end, end_inclusive=inclusive),
        period=period,
        entities=entities,
        entity_type=entity_type,
        dimensions=dimensions,
        measures=measures,
        time_zone=time_zone,
        samples=samples,
    )


def as_dict(frame: pl.DataFrame, keys: list[str], measure: str = "entries") -> dict:
    return {tuple(row[k] for k in keys): row[measure] for row in frame.iter_rows(named=True)}


# A few rows on the hour, one per entity and hour, 10 ** hour entries so sums show which rows.
HOURLY = store_frame([
    (utc(2024, 1, 1, h), entity, kind, "new", "18-24", 10**h * weight, None)
    for h in range(5)
    for entity, kind, weight in (("a", "location", 1), ("b", "location", 2), ("z", "zone", 3))
])


@pytest.fixture
def hourly_store(tmp_path: Path) -> ParquetMetricSource:
    return ParquetMetricSource(write_store(tmp_path / "store", HOURLY))


# --- schema -----------------------------------------------------------------------------------


def test_schema_lists_dimensions_and_measures(tmp_path):
    source = ParquetMetricSource(write_store(tmp_path / "store", HOURLY))
    schema = source.schema()
    assert schema == StoreSchema(
        dimensions=("entity_type", "segments", "age"), measures=("entries", "revenue")
    )
    assert schema.request_dimensions == ("entity", "entity_type", "segments", "age")


def test_schema_of_a_store_with_naive_timestamps(tmp_path):
    frame = HOURLY.with_columns(pl.col("timestamp").dt.replace_time_zone(None))
    source = ParquetMetricSource(write_store(tmp_path / "store", frame))
    assert source.schema().measures == ("entries", "revenue")


@pytest.mark.parametrize(
    "change, mentions",
    [
        (lambda f: f.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%d")), "'timestamp'"),
        (lambda f: f.drop("timestamp"), "'timestamp'"),
        (lambda f: f.with_columns(pl.col("entity_id").cast(pl.Categorical).to_physical()), "'entity_id'"),
        (lambda f: f.drop("entity_type"), "'entity_type'"),
    ],
)
def test_schema_of_a_store_off_the_layout(tmp_path, change, mentions):
    source = ParquetMetricSource(write_store(tmp_path / "store", change(HOURLY)))
    with pytest.raises(MetricSourceError, match="does not follow the layout") as caught:
        source.schema()
    assert mentions in str(caught.value)


def test_every_layout_problem_is_reported(tmp_path):
    frame = pl.DataFrame({"timestamp": ["x"], "entity_id": [1], "entries": [1]})
    with pytest.raises(MetricSourceError) as caught:
        ParquetMetricSource(write_store(tmp_path / "store", frame)).schema()
    for name in ("'timestamp'", "'entity_id'", "'entity_type'"):
        assert name in str(caught.value)


def test_an_empty_folder_is_not_a_store(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "notes.txt").write_text("no data here")
    with pytest.raises(MetricSourceError, match=r"holds no \*\.parquet files"):
        ParquetMetricSource(tmp_path / "store").schema()


def test_a_missing_folder_is_not_a_store(tmp_path):
    with pytest.raises(MetricSourceError, match="is not a folder"):
        ParquetMetricSource(tmp_path / "nowhere").schema()
    (tmp_path / "file.parquet").write_bytes(b"")
    with pytest.raises(MetricSourceError, match="is not a folder"):
        ParquetMetricSource(tmp_path / "file.parquet").schema()


def test_a_corrupt_file_is_a_metric_source_error(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "broken.parquet").write_bytes(b"not parquet at all")
    source = ParquetMetricSource(tmp_path / "store")
    with pytest.raises(MetricSourceError, match="cannot read metric store"):
        source.schema()
    with pytest.raises(MetricSourceError):
        source.fetch(query(utc(2024, 1, 1), utc(2024, 1, 2)))


# --- fetch: the window ------------------------------------------------------------------------


def test_fetch_returns_bucket_entity_dimensions_and_measures(hourly_store):
    result = hourly_store.fetch(query(
        utc(2024, 1, 1), utc(2024, 1, 2), dimensions=("segments",), measures=("entries", "revenue"),
    ))
    assert result.columns == ["bucket", "entity_id", "segments", "entries", "revenue"]
    assert result.schema["bucket"] == UTC_TS
    assert result.schema["entity_id"] == pl.String


def test_the_last_window_includes_its_end(hourly_store):
    result = hourly_store.fetch(query(
        utc(2024, 1, 1, 1), utc(2024, 1, 1, 3), inclusive=True, entities=("a",),
    ))
    assert as_dict(result, ["bucket", "entity_id"]) == {(utc(2024, 1, 1), "a"): 10 + 100 + 1000}


def test_other_windows_exclude_their_end(hourly_store):
    result = hourly_store.fetch(query(
        utc(2024, 1, 1, 1), utc(2024, 1, 1, 3), inclusive=False, entities=("a",),
    ))
    assert as_dict(result, ["bucket", "entity_id"]) == {(utc(2024, 1, 1), "a"): 10 + 100}


def test_consecutive_windows_read_each_row_once(hourly_store):
    cut = utc(2024, 1, 1, 2)
    first = hourly_store.fetch(query(utc(2024, 1, 1), cut, inclusive=False, period=P.hour))
    second = hourly_store.fetch(query(cut, utc(2024, 1, 1, 4), inclusive=True, period=P.hour))
    combined = pl.concat([first, second])
    assert combined["entries"].sum() == HOURLY["entries"].sum()
    assert combined.height == HOURLY.height


def test_a_window_with_no_rows_gives_an_empty_frame(hourly_store):
    result = hourly_store.fetch(query(utc(2025, 1, 1), utc(2025, 2, 1), dimensions=("age",)))
    assert result.height == 0
    assert result.columns == ["bucket", "entity_id", "age", "entries"]


# --- fetch: entity filters --------------------------------------------------------------------


def test_entity_filter(hourly_store):
    result = hourly_store.fetch(query(utc(2024, 1, 1), utc(2024, 1, 2), entities=("a", "z")))
    assert as_dict(result, ["entity_id"]) == {("a",): 11111, ("z",): 33333}


def test_entity_type_filter(hourly_store):
    result = hourly_store.fetch(query(utc(2024, 1, 1), utc(2024, 1, 2), entity_type="location"))
    assert as_dict(result, ["entity_id"]) == {("a",): 11111, ("b",): 22222}


def test_entity_and_entity_type_filters_combine(hourly_store):
    result = hourly_store.fetch(query(
        utc(2024, 1, 1), utc(2024, 1, 2), entities=("a", "z"), entity_type="location",
    ))
    assert as_dict(result, ["entity_id"]) == {("a",): 11111}


def test_unknown_entities_give_no_rows(hourly_store):
    result = hourly_store.fetch(query(utc(2024, 1, 1), utc(2024, 1, 2), entities=("nobody",)))
    assert result.height == 0


# --- fetch: sums against an independent computation --------------------------------------------


def _truncate(t: datetime, period: AggregationPeriod) -> datetime:
    """Bucket starts, written independently of ``periods``."""
    t = t.astimezone(timezone.utc)
    if period is P.minute:
        return datetime(t.year, t.month, t.day, t.hour, t.minute, tzinfo=timezone.utc)
    if period is P.hour:
        return datetime(t.year, t.month, t.day, t.hour, tzinfo=timezone.utc)
    day = datetime(t.year, t.month, t.day, tzinfo=timezone.utc)
    if period is P.day:
        return day
    if period is P.week:
        return day - timedelta(days=t.isoweekday() - 1)
    if period is P.month:
        return datetime(t.year, t.month, 1, tzinfo=timezone.utc)
    if period is P.quarter:
        return datetime(t.year, {1: 1, 2: 1, 3: 1, 4: 4, 5: 4, 6: 4, 7: 7, 8: 7, 9: 7}.get(t.month, 10), 1, tzinfo=timezone.utc)
    return datetime(t.year, 1, 1, tzinfo=timezone.utc)


def _random_rows(seed: int, count: int) -> list[tuple]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        t = utc(2024, 1, 1) + timedelta(seconds=rng.randrange(366 * 86400))
        entity = rng.choice(["a", "b", "c"])
        kind = "zone" if entity == "c" else "location"
        entries = None if rng.random() < 0.1 else rng.randrange(0, 50)
        revenue = None if rng.random() < 0.2 else round(rng.uniform(0, 100), 2)
        rows.append((t, entity, kind, rng.choice(["new", "returning"]), rng.choice(["18-24", "25-34"]), entries, revenue))
    return rows


def _expected(rows, window: Window, period, keys: list[str], measure: str, entities=None, entity_type=None):
    index = {"entity_id": 1, "entity_type": 2, "segments": 3, "age": 4}
    column = {"entries": 5, "revenue": 6}[measure]
    groups: dict[tuple, list] = defaultdict(list)
    for row in rows:
        t = row[0]
        inside = window.start <= t < window.end or (window.end_inclusive and t == window.end)
        if not inside:
            continue
        if entities is not None and row[1] not in entities:
            continue
        if entity_type is not None and row[2] != entity_type:
            continue
        key = (_truncate(t, period), *(row[index[k]] for k in keys))
        groups[key].append(row[column])
    sums = {}
    for key, values in groups.items():
        present = [v for v in values if v is not None]
        sums[key] = sum(present) if present else None
    return sums


RANDOM_ROWS = _random_rows(7, 3000)


@pytest.fixture(scope="module")
def random_store(tmp_path_factory) -> ParquetMetricSource:
    folder = tmp_path_factory.mktemp("random-store")
    return ParquetMetricSource(write_store(folder, store_frame(RANDOM_ROWS), files=3))


@pytest.mark.parametrize("period", list(P))
@pytest.mark.parametrize("inclusive", [True, False])
def test_sums_per_bucket_match_a_python_computation(random_store, period, inclusive):
    window = Window(utc(2024, 2, 10, 7, 30), utc(2024, 11, 20, 12), end_inclusive=inclusive)
    q = MetricQuery(window, period, None, None, ("segments",), ("entries", "revenue"))
    result = random_store.fetch(q)
    keys = ["bucket", "entity_id", "segments"]
    assert as_dict(result, keys, "entries") == _expected(
        RANDOM_ROWS, window, period, ["entity_id", "segments"], "entries"
    )
    expected_revenue = _expected(RANDOM_ROWS, window, period, ["entity_id", "segments"], "revenue")
    got_revenue = as_dict(result, keys, "revenue")
    assert got_revenue.keys() == expected_revenue.keys()
    for key, value in expected_revenue.items():
        assert got_revenue[key] == (None if value is None else pytest.approx(value)), key


@pytest.mark.parametrize("period", [P.hour, P.day, P.month])
def test_a_fetch_comes_in_row_key_order(random_store, period):
    """Sliced or not, the frame is sorted on its keys (nulls last), so combine need not sort."""
    window = Window(utc(2024, 1, 1), utc(2024, 12, 31, 23, 59, 59), end_inclusive=True)
    q = MetricQuery(window, period, None, None, ("segments",), ("entries",))
    result = random_store.fetch(q)
    keys = ["bucket", "entity_id", "segments"]
    assert result.height > 12
    assert result.equals(result.sort(keys, nulls_last=True))


@pytest.mark.parametrize("period", [P.hour, P.day])
def test_a_store_in_key_order_and_the_same_rows_shuffled_read_alike(tmp_path, period):
    """Groups come out in the order their keys first appear: a store written in time, then
    entity order needs no sort, a shuffled one is sorted; both give the same frame."""
    ordered = sorted(RANDOM_ROWS, key=lambda r: (r[0], r[1], r[3]))
    shuffled = random.Random(3).sample(ordered, len(ordered))
    window = Window(utc(2024, 1, 1), utc(2024, 12, 31, 23, 59, 59), end_inclusive=True)
    q = MetricQuery(window, period, None, None, ("segments",), ("entries", "revenue"))
    keys = ["bucket", "entity_id", "segments"]
    frames = [
        ParquetMetricSource(write_store(tmp_path / name, store_frame(rows), files=1)).fetch(q)
        for name, rows in (("ordered", ordered), ("shuffled", shuffled))
    ]
    assert frames[0].height > 12
    assert frames[0].equals(frames[0].sort(keys, nulls_last=True))
    # Floats added in another row order may differ in their last bits.
    assert frames[0].drop("revenue").equals(frames[1].drop("revenue"))
    for a, b in zip(frames[0]["revenue"], frames[1]["revenue"]):
        assert a == (None if b is None else pytest.approx(b))


def test_sums_with_filters_and_two_dimensions_match(random_store):
    window = Window(utc(2024, 1, 1), utc(2024, 12, 31, 23, 59, 59), end_inclusive=True)
    q = MetricQuery(window, P.month, ("a", "c"), "location", ("age", "segments"), ("entries",))
    result = random_store.fetch(q)
    assert as_dict(result, ["bucket", "entity_id", "age", "segments"]) == _expected(
        RANDOM_ROWS, window, P.month, ["entity_id", "age", "segments"], "entries",
        entities=("a", "c"), entity_type="location",
    )
    assert set(result["entity_id"]) == {"a"}


def test_rows_exactly_on_random_window_bounds(random_store):
    # Windows whose bounds are the timestamps of rows, so the closure decides.
    times = sorted({row[0] for row in RANDOM_ROWS})
    rng = random.Random(3)
    for _ in range(5):
        start, end = sorted(rng.sample(times, 2))
        for inclusive in (True, False):
            window = Window(start, end, inclusive)
            result = random_store.fetch(MetricQuery(window, P.year, None, None, (), ("entries",)))
            assert as_dict(result, ["bucket", "entity_id"]) == _expected(
                RANDOM_ROWS, window, P.year, ["entity_id"], "entries"
            )


# --- fetch: bucketing, nulls, time zones, files -----------------------------------------------


@pytest.mark.parametrize(
    "period, buckets",
    [
        (P.hour, [utc(2024, 3, 31, 23), utc(2024, 4, 1, 0), utc(2024, 4, 1, 1)]),
        (P.day, [utc(2024, 3, 31), utc(2024, 4, 1)]),
        (P.week, [utc(2024, 3, 25), utc(2024, 4, 1)]),  # 31 March is a Sunday
        (P.month, [utc(2024, 3, 1), utc(2024, 4, 1)]),
        (P.quarter, [utc(2024, 1, 1), utc(2024, 4, 1)]),
        (P.year, [utc(2024, 1, 1)]),
    ],
)
def test_buckets_per_period(tmp_path, period, buckets):
    frame = store_frame([
        (utc(2024, 3, 31, 23, 59, 59), "a", "location", "new", "18-24", 1, None),
        (utc(2024, 4, 1, 0, 0, 0), "a", "location", "new", "18-24", 2, None),
        (utc(2024, 4, 1, 1, 30), "a", "location", "new", "18-24", 4, None),
    ])
    source = ParquetMetricSource(write_store(tmp_path / "store", frame))
    result = source.fetch(query(utc(2024, 3, 1), utc(2024, 5, 1), period=period))
    assert sorted(result["bucket"].to_list()) == buckets
    assert result["entries"].sum() == 7


def test_a_group_of_only_nulls_sums_to_null_not_zero(tmp_path):
    frame = store_frame([
        (utc(2024, 1, 1, 1), "a", "location", "new", "18-24", None, None),
        (utc(2024, 1, 1, 2), "a", "location", "new", "18-24", None, 2.5),
        (utc(2024, 1, 1, 1), "b", "location", "new", "18-24", None, None),
        (utc(2024, 1, 1, 2), "b", "location", "new", "18-24", 3, None),
        (utc(2024, 1, 1, 1), "c", "location", "new", "18-24", 0, 0.0),
    ])
    source = ParquetMetricSource(write_store(tmp_path / "store", frame))
    result = source.fetch(query(utc(2024, 1, 1), utc(2024, 1, 2), measures=("entries", "revenue")))
    assert as_dict(result, ["entity_id"], "entries") == {("a",): None, ("b",): 3, ("c",): 0}
    assert as_dict(result, ["entity_id"], "revenue") == {("a",): 2.5, ("b",): None, ("c",): 0.0}


def test_naive_timestamps_are_read_as_utc(tmp_path):
    frame = store_frame([
        (utc(2024, 1, 1, 23, 30), "a", "location", "new", "18-24", 1, None),
        (utc(2024, 1, 2, 0, 0), "a", "location", "new", "18-24", 2, None),
        (utc(2024, 1, 2, 0, 30), "a", "location", "new", "18-24", 4, None),
    ]).with_columns(pl.col("timestamp").dt.replace_time_zone(None))
    assert frame.schema["timestamp"] == pl.Datetime("us")
    source = ParquetMetricSource(write_store(tmp_path / "store", frame))
    result = source.fetch(query(utc(2024, 1, 1, 23, 30), utc(2024, 1, 2), inclusive=False))
    assert result.schema["bucket"] == UTC_TS
    assert as_dict(result, ["bucket"]) == {(utc(2024, 1, 1),): 1}
    result = source.fetch(query(utc(2024, 1, 1), utc(2024, 1, 3), period=P.hour))
    assert as_dict(result, ["bucket"]) == {(utc(2024, 1, 1, 23),): 1, (utc(2024, 1, 2, 0),): 6}


def test_millisecond_and_nanosecond_timestamps(tmp_path):
    frame = HOURLY.with_columns(pl.col("timestamp").cast(pl.Datetime("ns", "UTC")))
    write_store(tmp_path / "ns", frame)
    frame = HOURLY.with_columns(pl.col("timestamp").cast(pl.Datetime("ms", "UTC")))
    write_store(tmp_path / "ms", frame)
    for folder in ("ns", "ms"):
        result = ParquetMetricSource(tmp_path / folder).fetch(
            query(utc(2024, 1, 1, 1), utc(2024, 1, 1, 3), inclusive=False, entities=("a",))
        )
        assert as_dict(result, ["entity_id"]) == {("a",): 110}, folder


def test_timestamps_stored_in_another_time_zone(tmp_path):
    frame = HOURLY.with_columns(pl.col("timestamp").dt.convert_time_zone("Europe/Berlin"))
    source = ParquetMetricSource(write_store(tmp_path / "store", frame))
    source.schema()
    result = source.fetch(query(utc(2024, 1, 1, 1), utc(2024, 1, 1, 3), inclusive=False, entities=("a",), period=P.hour))
    assert as_dict(result, ["bucket"]) == {(utc(2024, 1, 1, 1),): 10, (utc(2024, 1, 1, 2),): 100}


def test_window_bounds_in_another_offset_on_a_naive_store(tmp_path):
    frame = HOURLY.with_columns(pl.col("timestamp").dt.replace_time_zone(None))
    source = ParquetMetricSource(write_store(tmp_path / "store", frame))
    plus_two = timezone(timedelta(hours=2))
    # 03:00..04:00 at +02:00 is 01:00..02:00 UTC
    window = (datetime(2024, 1, 1, 3, tzinfo=plus_two), datetime(2024, 1, 1, 4, tzinfo=plus_two))
    result = source.fetch(query(*window, inclusive=True, entities=("a",)))
    assert as_dict(result, ["entity_id"]) == {("a",): 10 + 100}


def test_several_files_are_one_table(tmp_path):
    one = ParquetMetricSource(write_store(tmp_path / "one", store_frame(RANDOM_ROWS)))
    many = ParquetMetricSource(write_store(tmp_path / "many", store_frame(RANDOM_ROWS), files=5))
    assert len(list((tmp_path / "many").glob("*.parquet"))) == 5
    assert one.schema() == many.schema()
    q = query(utc(2024, 1, 1), utc(2024, 12, 31), period=P.week, dimensions=("age",), measures=("entries",))
    keys = ["bucket", "entity_id", "age"]
    assert as_dict(many.fetch(q), keys) == as_dict(one.fetch(q), keys)
    assert as_dict(many.fetch(q), keys) == _expected(
        RANDOM_ROWS, q.window, P.week, ["entity_id", "age"], "entries"
    )


def test_files_in_subfolders_are_part_of_the_store(tmp_path):
    write_store(tmp_path / "store" / "2024" / "01", HOURLY.filter(pl.col("entity_id") == "a"))
    write_store(tmp_path / "store" / "2024" / "02", HOURLY.filter(pl.col("entity_id") != "a"))
    result = ParquetMetricSource(tmp_path / "store").fetch(query(utc(2024, 1, 1), utc(2024, 1, 2)))
    assert as_dict(result, ["entity_id"]) == {("a",): 11111, ("b",): 22222, ("z",): 33333}


# --- reads in slices ---------------------------------------------------------------------------


@pytest.mark.parametrize("period", ["minute", "hour", "day", "week"])
@pytest.mark.parametrize("end_inclusive", [True, False])
def test_slices_cut_on_bucket_boundaries_and_keep_the_window_closure(period, end_inclusive):
    q = query(utc(2024, 1, 3, 6, 30), utc(2024, 3, 1, 12), inclusive=end_inclusive, period=P(period))
    slices = _slices(q)
    assert len(slices) > 1
    assert slices[0].start == q.window.start and slices[-1].end == q.window.end
    assert slices[-1].end_inclusive == end_inclusive
    assert all(not s.end_inclusive for s in slices[:-1])
    for before, after in zip(slices, slices[1:]):
        assert before.end == after.start
        assert after.start - before.start <= parquet_source.SLICE_SPAN
    for s in slices[1:]:
        assert s.start == _truncate(s.start, P(period))


@pytest.mark.parametrize("period", ["hour", "day", "week"])
@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_slices_cut_on_local_bucket_boundaries(period, zone):
    """A local day is cut at local midnight (23 or 25 hours long across a DST change), so no
    bucket of the export's time zone is split between two slices."""
    tz = ZoneInfo(zone)
    q = query(utc(2024, 2, 20, 7), utc(2024, 11, 20, 3), period=P(period), time_zone=zone)
    slices = _slices(q)
    assert len(slices) > 1
    for s in slices[1:]:
        wall = s.start.astimezone(tz).replace(tzinfo=timezone.utc)  # local wall-clock time
        assert wall == _truncate(wall, P(period))
        if period != "hour":
            assert s.start.astimezone(timezone.utc).hour != 0  # not a UTC midnight
    for before, after in zip(slices, slices[1:]):
        assert before.end == after.start
        assert after.start - before.start <= parquet_source.SLICE_SPAN


def test_long_periods_and_multiples_are_read_in_one_piece_and_samples_in_day_slices():
    start, end = utc(2024, 1, 1), utc(2024, 3, 30)
    for q in (query(start, end, period=P.month), query(start, end, period=Granularity(P.hour, 2))):
        assert _slices(q) == [q.window]
    assert len(_slices(query(start, end, period=Granularity(P.day, 1)))) > 1
    samples = _slices(query(start, end, period=Granularity(P.quarter, 1), samples=True))
    assert len(samples) > 1 and all(s.start.hour == 0 for s in samples)


def tied_samples_store(folder: Path) -> Path:
    """Several rows per timestamp and entity (ties), in no order, over three files, with
    awkward floats (their sum depends on the order of the additions), nulls and a NaN."""
    rng = random.Random(5)
    stamps = [utc(2024, 1, 1) + timedelta(minutes=15 * rng.randrange(4 * 24 * 40)) for _ in range(400)]
    rows = []
    for _ in range(4000):
        revenue = rng.choice([None, float("nan"), -0.0]) if rng.random() < 0.05 else (
            rng.uniform(-1, 1) * 10 ** rng.randint(-6, 12)
        )
        rows.append((rng.choice(stamps), rng.choice("abc"), rng.choice(["location", "zone"]),
                     "new", "18-24", rng.randint(0, 99), revenue))
    return write_store(folder, store_frame(rows), files=3)


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_sliced_samples_are_the_store_rows_added_in_order(tmp_path, monkeypatch, zone):
    """A decimation's samples (one per stored timestamp and entity) read in day slices are the
    rows of each timestamp and entity added one by one in the store's order, as one read."""
    store = tied_samples_store(tmp_path / "store")
    source = ParquetMetricSource(store)
    q = query(utc(2024, 1, 3, 9, 30), utc(2024, 2, 5, 17, 45), period=Granularity(P.quarter, 1),
              entity_type="location", measures=("entries", "revenue"), time_zone=zone, samples=True)
    assert len(_slices(q)) > 1
    sliced = source.fetch(q)
    monkeypatch.setattr(parquet_source, "SLICE_SPAN", timedelta(days=365))
    assert _slices(q) == [q.window]
    assert sliced.equals(source.fetch(q), null_equal=True)

    expected: dict[tuple, list] = defaultdict(lambda: [0, None])
    stored = pl.concat(pl.read_parquet(f) for f in sorted(store.glob("*.parquet")))
    for t, entity, kind, _, _, entries, revenue in stored.iter_rows():
        if kind != "location" or not q.window.start <= t <= q.window.end:
            continue
        sums = expected[(t, entity)]
        sums[0] += entries
        if revenue is not None:
            sums[1] = (0.0 if sums[1] is None else sums[1]) + revenue
    assert sliced.schema["bucket"] == pl.Datetime("us", zone)
    got = [(b.astimezone(timezone.utc), e, n, r) for b, e, n, r in sliced.rows()]
    want = [(t, e, n, r) for (t, e), (n, r) in sorted(expected.items())]
    assert len(got) == len(want) > 300
    assert [g[:3] for g in got] == [w[:3] for w in want]
    for g, w in zip(got, want):
        assert (g[3] is None and w[3] is None) or repr(g[3]) == repr(w[3]), (g, w)


@pytest.mark.parametrize("period", ["hour", "day", "week"])
@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_a_sliced_read_equals_one_read(demo_store_path, monkeypatch, period, zone):
    source = ParquetMetricSource(demo_store_path)
    q = query(
        utc(2024, 2, 3, 9, 30), utc(2024, 4, 20, 17, 45), period=P(period),
        entity_type="location", dimensions=("segments",), measures=("entries", "sales_volume"),
        time_zone=zone,
    )
    keys = q.key_columns
    assert len(_slices(q)) > 1
    sliced = source.fetch(q).sort(keys)
    monkeypatch.setattr(parquet_source, "SLICE_SPAN", timedelta(days=365))
    assert _slices(q) == [q.window]
    whole = source.fetch(q).sort(keys)
    assert sliced.height == whole.height > 0
    assert sliced.equals(whole)
    assert sliced.select(pl.struct(keys).is_unique().all()).item()
    assert sliced.schema["bucket"] == pl.Datetime("us", zone)
