"""The type a measure is summed in (``source.sum_types``), end to end: narrow integers and
Float32 are added exactly and exported as Int64 and Float64 by every source, decimals exactly
as 38-digit decimals of their scale, and a total that does not fit Int64 (or 38 digits) fails
the export naming its measure or column, never written wrapped. Each case is an exported file
against numbers worked out by hand."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal

import polars as pl
import pytest

from export_pipeline.contract.validation import validate_document
from export_pipeline.formats.csv_writer import iter_csv
from export_pipeline.planning.plan import plan_export
from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline.store.source import SumOutOfRange
from export_pipeline.store.sql import SqlMetricSource
from export_pipeline.table.combine import combine
from export_pipeline_tests.support.helpers import write_store
from export_pipeline_tests.support.sql_stores import load_duckdb

HOURS = [datetime(2024, 1, 1, h, m, tzinfo=timezone.utc) for h, m in ((0, 0), (0, 30), (1, 0), (1, 30))]
# Two rows per hour; 16777217.0 is stored as the Float32 16777216.0.
NARROW = pl.DataFrame({
    "timestamp": HOURS, "entity_id": ["e"] * 4, "entity_type": ["t"] * 4,
    "i32": pl.Series([2_000_000_000, 2_000_000_000, 1, 2], dtype=pl.Int32),
    "u32": pl.Series([4_000_000_000, 4_000_000_000, 1, 2], dtype=pl.UInt32),
    "i16": pl.Series([30000, 30000, 1, 2], dtype=pl.Int16),
    "f32": pl.Series([0.1, 0.2, 16777217.0, 1.0], dtype=pl.Float32),
})
# 2**62 + 2**62 is 2**63, one past Int64; each entity's value fits.
WIDE = pl.DataFrame({
    "timestamp": HOURS[:2] * 2, "entity_id": ["a", "a", "b", "b"], "entity_type": ["t"] * 4,
    "i64": pl.Series([2**62, 2**62, 2**62, -5], dtype=pl.Int64),
})

SUMS = (
    "Date,i32,u32,i16,f32\r\n"
    "2024-01-01T00:00:00+00:00,4000000000,8000000000,60000,0.30000000447034836\r\n"
    "2024-01-01T01:00:00+00:00,3,3,3,16777217.0\r\n"
)
AVERAGES = (
    "Date,i32,u32,i16,f32\r\n"
    "2024-01-01T00:00:00+00:00,2000000000.0,4000000000.0,30000.0,0.15000000223517418\r\n"
    "2024-01-01T01:00:00+00:00,1.5,1.5,1.5,8388608.5\r\n"
)


def document(measures, dsf=None, row_filters=("entity",), transform=None) -> dict:
    metric = {"metricId": "m", "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T02:00:00Z"}
    if dsf:
        metric["decimation"] = {"ds": "1h", "dsf": dsf}
    else:
        metric["aggregationPeriod"] = "hour"
    if transform:
        metric["transform"] = transform
    columns = [{"heading": "Date"}] + [
        {"heading": m, "metricId": "m", "fetchValue": m} for m in measures
    ]
    return {"csvFormat": {"columns": columns, "sortBy": [], "rowFilters": list(row_filters)},
            "metricRequests": [metric]}


def export_table(doc, source):
    """validate, plan, fetch and combine in process, as the export job does."""
    request = validate_document(doc, source.schema()).request
    fetched = defaultdict(list)
    for scan in plan_export(request, "test").scans:
        frame = source.fetch(scan.query)
        for task in scan.tasks:
            fetched[task.request_index].append((task.window_index, frame))
    return combine(request, {i: [f for _, f in sorted(v, key=lambda p: p[0])] for i, v in fetched.items()})


def export_csv(doc, source) -> str:
    return b"".join(iter_csv(export_table(doc, source))).decode()


@pytest.fixture(scope="module", params=["parquet", "duckdb"])
def source_of(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    opened = []

    def make(frame: pl.DataFrame):
        name = f"s{len(opened)}"
        if request.param == "parquet":
            return ParquetMetricSource(write_store(folder / name, frame))
        opened.append(SqlMetricSource(load_duckdb(folder / f"{name}.db", frame)))
        return opened[-1]

    yield make
    for source in opened:
        source.close()


def test_narrow_integers_and_float32_sum_exactly(source_of):
    source = source_of(NARROW)
    assert export_csv(document(["i32", "u32", "i16", "f32"]), source) == SUMS
    assert export_csv(document(["i32", "u32", "i16", "f32"], "sum"), source) == SUMS


def test_averages_of_narrow_integers_and_float32(source_of):
    assert export_csv(document(["i32", "u32", "i16", "f32"], "avg"), source_of(NARROW)) == AVERAGES


def test_float32_is_written_as_its_float64_value_in_csv_and_xlsx(source_of):
    """Every aggregate of a Float32 column is Float64, so CSV and XLSX hold the same number."""
    from openpyxl import load_workbook

    from export_pipeline.formats.xlsx_writer import iter_xlsx

    table = export_table(document(["f32"], "max"), source_of(NARROW))
    assert table.frame.dtypes[1] == pl.Float64
    text = b"".join(iter_csv(table)).decode()
    assert text.splitlines()[1:] == ["2024-01-01T00:00:00+00:00,0.20000000298023224",
                                     "2024-01-01T01:00:00+00:00,16777216.0"]
    sheet = load_workbook(io.BytesIO(b"".join(iter_xlsx(table)))).worksheets[0]
    assert [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)] == [
        0.20000000298023224, 16777216]


def test_a_store_sum_past_int64_fails_naming_its_measure(source_of):
    with pytest.raises(SumOutOfRange, match=r"measure 'i64': the sum 9223372036854775808 "
                       r"\(bucket 2024-01-01 00:00:00\+00:00, entity_id a\) does not fit the Int64"):
        export_csv(document(["i64"]), source_of(WIDE))


def test_a_sum_of_entities_past_int64_fails_naming_its_column(source_of):
    """Each entity's hour fits; their total (2**63 + 5) does not."""
    frame = pl.DataFrame({
        "timestamp": HOURS[:2] + HOURS[:1], "entity_id": ["a", "b", "b"], "entity_type": ["t"] * 3,
        "i64": pl.Series([2**62, 2**62, 5], dtype=pl.Int64),
    })
    with pytest.raises(SumOutOfRange, match=r"column 'i64' \(metric 'm', measure 'i64'\): the sum "
                       f"{2**63 + 5} "):
        export_csv(document(["i64"], row_filters=["entity_type"]), source_of(frame))


def test_the_average_of_large_integers_is_right(source_of):
    """The samples (2**62 each) fit, their total does not: the mean is taken on the exact
    total, not a wrapped one."""
    source = source_of(WIDE.filter(pl.col("entity_id") == "a"))
    assert export_csv(document(["i64"], "avg"), source).splitlines()[1] == (
        "2024-01-01T00:00:00+00:00,4.611686018427388e+18")
    with pytest.raises(SumOutOfRange, match=f"'i64'.*: the sum {2**63} "):
        export_csv(document(["i64"], "sum"), source)


def test_a_difference_past_int64_fails(source_of):
    frame = pl.DataFrame({
        "timestamp": [HOURS[0], HOURS[2]], "entity_id": ["a", "a"], "entity_type": ["t", "t"],
        "i64": pl.Series([-2**63, 2**63 - 1], dtype=pl.Int64),
    })
    with pytest.raises(SumOutOfRange, match=f"column 'i64' .*the sum {2**64 - 1} "):
        export_csv(document(["i64"], transform="delta"), source_of(frame))


def test_a_pdf_total_past_int64_is_shown_exactly():
    from export_pipeline.contract.models import DecimationFunction
    from export_pipeline.formats.pdf_report import _Metric, _number, _totals

    frame = pl.DataFrame({"v": pl.Series([2**62, 2**62, 7], dtype=pl.Int64)})
    totals = _totals(frame, [_Metric("v", "V", "v", DecimationFunction.sum)])
    assert totals == {"v": 2**63 + 7} and _number(totals["v"]) == f"{2**63 + 7:,}"


@pytest.mark.parametrize("values, total", [
    ([2**61, 2**61 - 1], 2**62 - 1),  # 2 rows of at most 2**61: added in Int64 alone
    ([2**62, 2**62 - 1], 2**63 - 1),  # the largest Int64, found by adding again exactly
    ([2**62, -(2**62), 5], 5),  # large magnitudes that cancel
    ([-(2**62), -(2**62)], -(2**63)),  # the smallest Int64
])
def test_large_totals_that_fit_are_exact(source_of, values, total):
    """A total is added quickly in Int64 when its magnitudes show it cannot wrap, else again
    in Int128: either way the file holds the exact total."""
    frame = pl.DataFrame({
        "timestamp": [HOURS[0]] * len(values), "entity_id": ["a"] * len(values),
        "entity_type": ["t"] * len(values), "i64": pl.Series(values, dtype=pl.Int64),
    })
    assert export_csv(document(["i64"]), source_of(frame)).splitlines()[1] == (
        f"2024-01-01T00:00:00+00:00,{total}")


def test_quick_sums_stand_only_while_no_total_can_wrap():
    from export_pipeline.store.source import magnitude_bounds, quick_sums_exact

    def exact(values, dtype=pl.Int64):
        frame = pl.DataFrame({"v": pl.Series(values, dtype=dtype), "f": [0.5] * len(values)})
        return quick_sums_exact(frame.select(magnitude_bounds(["v", "f"], frame.schema)))

    assert exact([2**61, 2**61, -(2**61)])  # 3 rows of at most 2**61: under 2**63
    assert not exact([2**62, 1, 1])  # 3 * 2**62 may reach past Int64
    assert not exact([-(2**63)])  # the smallest Int64's magnitude is 2**63
    assert exact([], pl.Int32) and exact([None, 3], pl.UInt32)


def decimals(values: list[str | None], precision: int = 12) -> pl.Series:
    return pl.Series(values, dtype=pl.String).cast(pl.Decimal(precision, 2))


# Two entities, two rows an hour. ``big`` (Decimal(20, 2)) holds values a Float64 rounds.
DECIMALS = pl.DataFrame({
    "timestamp": HOURS * 2, "entity_id": ["a"] * 4 + ["b"] * 4, "entity_type": ["t"] * 8,
    "amount": decimals(["0.10", "0.20", "1234567890.05", "1234567890.05",
                        "-0.30", None, "9999999999.99", "0.01"]),
    "big": decimals(["123456789012345678.91", "0.01", "-99999999999999999.99", "1.00",
                     "0.10", "0.20", None, "5.00"], 20),
})
H0, H1 = "2024-01-01T00:00:00+00:00", "2024-01-01T01:00:00+00:00"
# 38 digits, the most a decimal sum holds: two of them do not fit.
MOST = "999999999999999999999999999999999999.99"


def test_decimals_are_added_and_exported_as_38_digit_decimals_of_their_scale():
    from export_pipeline.store.source import decimal_holds, sum_types

    assert sum_types(pl.Decimal(12, 2)) == (pl.Decimal(38, 2), pl.Decimal(38, 2))
    assert sum_types(pl.Decimal(38, 10)) == (pl.Decimal(38, 10), pl.Decimal(38, 10))
    assert decimal_holds(10**37 - 1, 10) and not decimal_holds(10**37, 10)


def test_wide_sums_are_exact_past_38_digits_and_fail_only_on_a_total_that_does_not_fit():
    """``wide_sum`` against Python's integers, on values near the 38-digit limit."""
    import random

    from export_pipeline.store.source import SumOutOfRange, wide_sum, wide_totals

    rng = random.Random(5)
    limit = 10**38
    units = [rng.choice([rng.randrange(-limit + 1, limit), rng.randrange(-999, 1000), None])
             for _ in range(3000)]
    frame = pl.DataFrame({
        "g": [rng.randrange(40) for _ in units],
        "d": decimals([None if u is None else f"{Decimal(f'{u}E-2'):f}" for u in units], 38),
    })
    summed = frame.group_by("g").agg(wide_sum(pl.col("d"), "d"))
    totals: dict[int, int | None] = {}
    for g, u in zip(frame["g"], units):
        totals[g] = (totals.get(g) or 0) + u if u is not None else totals.get(g)
    fitting = [g for g, t in totals.items() if t is None or abs(t) < limit]
    assert 0 < len(fitting) < len(totals)
    got = wide_totals(summed.filter(pl.col("g").is_in(fitting)), {"d": 2}, {"d": "d"}, ["g"])
    assert {g: v for g, v in got.iter_rows()} == {
        g: None if totals[g] is None else Decimal(f"{totals[g]}E-2") for g in fitting}
    with pytest.raises(SumOutOfRange, match=r"^d: the sum -?\d{37,}\.\d\d \(g \d+\) does not fit"):
        wide_totals(summed, {"d": 2}, {"d": "d"}, ["g"])


def test_decimals_sum_exactly_and_the_same_from_every_source(source_of):
    """0.10 + 0.20 is 0.30, not 0.3 or 0.30000000000000004, and a 20-digit total keeps its
    last cent; every aggregate of decimals is written as the Parquet store writes it."""
    source = source_of(DECIMALS)
    assert export_csv(document(["amount", "big"]), source).splitlines() == [
        "Date,amount,big",
        f"{H0},0.30,123456789012345678.92",
        f"{H0},-0.30,0.30",
        f"{H1},2469135780.10,-99999999999999998.99",
        f"{H1},10000000000.00,5.00",
    ]
    total = document(["amount", "big"], row_filters=["entity_type"])
    assert export_csv(total, source).splitlines()[1:] == [
        f"{H0},0.00,123456789012345679.22",
        f"{H1},12469135780.10,-99999999999999993.99",
    ]
    assert export_csv(document(["amount"], transform="delta"), source).splitlines()[1:] == [
        f"{H0},", f"{H0},", f"{H1},2469135779.80", f"{H1},10000000000.30",
    ]


@pytest.mark.parametrize("dsf, cells", [
    ("sum", ["0.30", "-0.30", "2469135780.10", "10000000000.00"]),
    ("max", ["0.20", "-0.30", "1234567890.05", "9999999999.99"]),
    ("min", ["0.10", "-0.30", "1234567890.05", "0.01"]),
    # Floats, from the exact total: 0.30 / 2, not (0.1 + 0.2) / 2 = 0.15000000000000002.
    ("avg", ["0.15", "-0.3", "1234567890.05", "5000000000.0"]),
    ("stddev", ["0.07071067811865477", "", "0.0", "7071067811.851333"]),
])
def test_decimated_decimals_are_the_same_from_every_source(source_of, dsf, cells):
    got = export_csv(document(["amount"], dsf), source_of(DECIMALS)).splitlines()[1:]
    assert got == [f"{H0},{cells[0]}", f"{H0},{cells[1]}", f"{H1},{cells[2]}", f"{H1},{cells[3]}"]


@pytest.mark.parametrize("scale", [0, 1, 2, 38])
def test_a_decimal_sum_of_38_digits_is_exported_exactly(source_of, scale):
    """A total at the very edge of 38 digits, positive and negative, whatever the scale: two
    values that fit add up to the largest decimal the sum holds, written digit for digit."""
    def unscaled(units: int) -> Decimal:
        return Decimal(f"{units}E-{scale}")

    half = 5 * 10**37
    frame = pl.DataFrame({
        "timestamp": HOURS[:2] * 2, "entity_id": ["a", "a", "b", "b"], "entity_type": ["t"] * 4,
        "d": pl.Series([f"{unscaled(u):f}" for u in (half, half - 1, -half, 1 - half)])
        .cast(pl.Decimal(38, scale)),
    })
    most = f"{unscaled(10**38 - 1):f}"
    assert export_csv(document(["d"]), source_of(frame)).splitlines()[1:] == [
        f"{H0},{most}", f"{H0},-{most}"]


# Hour 0 adds past 38 digits, up and down; hour 1 only runs past them, ending at MOST.
OVERFLOWING = pl.DataFrame({
    "timestamp": [HOURS[0], HOURS[0], HOURS[2], HOURS[3], HOURS[3]],
    "entity_id": ["a"] * 5, "entity_type": ["t"] * 5, "region": ["r"] * 5,
    "n": pl.Series([1, 2, 3, 4, 5], dtype=pl.Int64),
    "up": decimals([MOST, "0.01", MOST, MOST, "-" + MOST], 38),
    "down": decimals(["-" + MOST, "-0.01", "1.00", "2.00", "3.00"], 38),
})
ROW = r"\(bucket 2024-01-01 00:00:00\+00:00, entity_id a{}\) does not fit the Decimal"


@pytest.mark.parametrize("doc, error", [
    (document(["up"]), rf"^measure 'up': the sum 1{'0' * 36}\.00 {ROW.format('')}"),
    (document(["down"]), rf"^measure 'down': the sum -1{'0' * 36}\.00 {ROW.format('')}"),
    (document(["n", "down", "up"], row_filters=["entity", "region"]),
     rf"^measure 'down': the sum -1{'0' * 36}\.00 {ROW.format(', region r')}"),
    # A decimated sum: the store sums the rows of each stored timestamp.
    (document(["up"], "sum"), rf"^measure 'up': the sum 1{'0' * 36}\.00 {ROW.format('')}"),
], ids=["up", "down", "dimension", "samples"])
def test_a_store_decimal_sum_past_38_digits_fails_naming_its_row(tmp_path, doc, error):
    """Past 38 digits, up or down, every store fails with the same error: the measure, the
    exact total and its row's keys. DuckDB refuses such a sum itself; its query is then read
    again in a form that cannot overflow, which gives the Parquet store's error."""
    parquet = ParquetMetricSource(write_store(tmp_path / "store", OVERFLOWING))
    errors = []
    with SqlMetricSource(load_duckdb(tmp_path / "m.db", OVERFLOWING)) as sql:
        for source in (parquet, sql):
            with pytest.raises(SumOutOfRange, match=error) as caught:
                export_csv(doc, source)
            errors.append(str(caught.value))
    assert errors[0] == errors[1]


def test_a_store_decimal_sum_running_past_38_digits_is_exact(source_of):
    """MOST + MOST - MOST: DuckDB's own sum fails past its 128-bit integers, the form that
    cannot overflow gives the total, as the Parquet store does."""
    frame = OVERFLOWING.filter(pl.col("timestamp") >= HOURS[2])
    assert export_csv(document(["n", "up", "down"]), source_of(frame)).splitlines()[1:] == [
        f"{H1},12,{MOST},6.00"]


def test_decimal_sums_past_38_digits_fail_and_those_that_fit_are_exact(source_of):
    """Each entity's sum fits; their total does not, or does once a negative one cancels it.
    A difference of two bucket sums past 38 digits fails as well."""
    def entities(*values: str) -> pl.DataFrame:
        return pl.DataFrame({
            "timestamp": HOURS[:1] * len(values), "entity_id": list("abc"[:len(values)]),
            "entity_type": ["t"] * len(values), "d": decimals(list(values), 38),
        })

    with pytest.raises(SumOutOfRange, match=r"column 'd' \(metric 'm', measure 'd'\): the sum "
                       r"1999999999999999999999999999999999999\.98 \(bucket 2024-01-01 00:00:00\+00:00, "
                       r"entity_type t\)"):
        export_csv(document(["d"], row_filters=["entity_type"]), source_of(entities(MOST, MOST)))
    cancelling = source_of(entities(MOST, MOST, "-" + MOST))
    assert export_csv(document(["d"], row_filters=["entity_type"]), cancelling).splitlines()[1:] == [
        f"{H0},{MOST}"]
    delta = pl.DataFrame({
        "timestamp": [HOURS[0], HOURS[2]], "entity_id": ["a", "a"], "entity_type": ["t", "t"],
        "d": decimals([MOST, "-" + MOST], 38),
    })
    with pytest.raises(SumOutOfRange, match=rf"column 'd' .*the sum -1{'9' * 36}\.98 "
                       r"\(bucket 2024-01-01 01:00:00\+00:00, entity_id a\)"):
        export_csv(document(["d"], transform="delta"), source_of(delta))
