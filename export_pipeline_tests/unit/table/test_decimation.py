"""Each decimated bucket's function of its samples, for all buckets at once, checked against
plain Python over the samples in time order: sums added one by one from zero, the mean as
that sum over the count, the sample variance in two passes; nulls are no samples, a NaN
is one."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from export_pipeline.contract.models import DecimationFunction as F
from export_pipeline.table import decimation
from export_pipeline.table.decimation import decimate
from export_pipeline.timeline.periods import AggregationPeriod, Granularity

START = datetime(2024, 1, 1, tzinfo=timezone.utc)
MONTH = Granularity(AggregationPeriod.month)


def samples(seed: int, nan: bool) -> pl.DataFrame:
    """One row per timestamp and entity (some entities missing at some timestamps), sorted
    on (bucket, entity), with awkward floats, nulls and, with ``nan``, a few NaN."""
    rng = random.Random(seed)
    rows = []
    for step in range(0, 3000, 7):
        t = START + timedelta(hours=step)
        for entity in ("a", "b", None):
            if rng.random() < 0.2:
                continue
            x = rng.uniform(-1, 1) * 10 ** rng.randint(-5, 9)
            if rng.random() < 0.05:
                x = None
            elif nan and rng.random() < 0.01:
                x = math.nan
            rows.append((t, entity, x, rng.randint(-50, 50)))
    return pl.DataFrame(rows, schema={"bucket": pl.Datetime("us", "UTC"), "entity_id": pl.String,
                                      "x": pl.Float64, "n": pl.Int64}, orient="row")


def by_month(frame: pl.DataFrame, column: str) -> dict[tuple, list]:
    groups: dict[tuple, list] = {}
    for t, entity, value in frame.select("bucket", "entity_id", column).iter_rows():
        key = (t.replace(day=1, hour=0), entity)
        groups.setdefault(key, [])
        if value is not None:
            groups[key].append(value)
    return groups


def in_order_sum(values: list[float]) -> float:
    total = 0.0
    for v in values:
        total += v
    return total


def expected(values: list, function: F):
    if function is F.sum:
        return in_order_sum(values) if values else None
    if function is F.min:
        return min(values) if values else None
    if function is F.max:
        return max(values) if values else None
    mean = in_order_sum(values) / len(values) if values else None
    if function is F.avg:
        return mean
    if len(values) < 2:
        return None
    variance = in_order_sum([(v - mean) ** 2 for v in values]) / (len(values) - 1)
    return variance if function is F.variance else math.sqrt(variance)


def same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("function", [F.sum, F.avg, F.stddev, F.variance, F.min, F.max])
@pytest.mark.parametrize("codes_fit", [True, False])
def test_every_bucket_is_its_function_of_the_samples_in_time_order(function, codes_fit, monkeypatch):
    """Buckets grouped by their integer codes, or by the keys when the codes would not fit."""
    if not codes_fit:
        monkeypatch.setattr(decimation, "CODE_LIMIT", 1)
    frame = samples(3, nan=function not in (F.min, F.max))
    table = decimate(frame, ["bucket", "entity_id"], {"x": function, "n": function}, MONTH, "UTC")
    for column in ("x", "n"):
        want = {k: expected(v, function) for k, v in by_month(frame, column).items()}
        got = {(t, e): v for t, e, v in table.select("bucket", "entity_id", column).iter_rows()}
        assert got.keys() == want.keys() and len(got) == 15
        wrong = [(k, got[k], want[k]) for k in want if not same(got[k], want[k])]
        assert not wrong, wrong[:3]


def test_buckets_come_in_the_order_of_their_first_sample_with_sums_in_their_adding_type():
    """An integer sum comes in Int64 where no total can leave it, else in Int128 (``combine``
    checks it into Int64)."""
    frame = samples(4, nan=False)
    table = decimate(frame, ["bucket", "entity_id"], {"x": F.avg, "n": F.sum}, MONTH, "UTC")
    firsts = (
        frame.with_columns(pl.col("bucket").dt.truncate("1mo"))
        .select("bucket", "entity_id").unique(maintain_order=True)
    )
    assert table.select("bucket", "entity_id").equals(firsts)
    assert table.schema == pl.Schema({"bucket": pl.Datetime("us", "UTC"), "entity_id": pl.String,
                                      "x": pl.Float64, "n": pl.Int64})


def test_a_bucket_with_one_sample_has_no_deviation_and_one_without_values_no_mean():
    frame = pl.DataFrame({
        "bucket": [START, START + timedelta(days=40), START + timedelta(days=41)],
        "entity_id": ["a", "a", "a"],
        "x": [-0.0, None, None],
    }, schema={"bucket": pl.Datetime("us", "UTC"), "entity_id": pl.String, "x": pl.Float64})
    for function, want in ((F.stddev, [None, None]), (F.avg, [0.0, None]), (F.sum, [0.0, None])):
        got = decimate(frame, ["bucket", "entity_id"], {"x": function}, MONTH, "UTC")["x"].to_list()
        assert got == want and (want[0] is None or math.copysign(1, got[0]) == 1)


def test_a_nan_sample_makes_sums_and_moments_nan_while_min_and_max_skip_it():
    """As the README states: polars' min and max skip NaN; a bucket of NaN alone is NaN."""
    nan = math.nan
    frame = pl.DataFrame({
        "bucket": [START, START + timedelta(hours=1), START + timedelta(days=40),
                   START + timedelta(days=41)],
        "entity_id": ["a", "a", "a", "a"],
        "x": [2.0, nan, nan, nan],
    }, schema={"bucket": pl.Datetime("us", "UTC"), "entity_id": pl.String, "x": pl.Float64})
    for function, first in ((F.min, 2.0), (F.max, 2.0), (F.sum, nan), (F.avg, nan),
                            (F.stddev, nan), (F.variance, nan)):
        got = decimate(frame, ["bucket", "entity_id"], {"x": function}, MONTH, "UTC")["x"]
        assert same(got[0], first) and math.isnan(got[1]), (function, got.to_list())


def test_decimal_samples_keep_their_digits_and_their_statistics_are_floats():
    """``sum``, ``min`` and ``max`` of decimals are exact decimals; ``avg`` is the exact total
    over the count as a float (0.15, not (0.1 + 0.2) / 2), ``stddev`` a float."""
    from decimal import Decimal

    frame = pl.DataFrame({
        "bucket": [START + timedelta(days=d) for d in (0, 1, 2, 40)],
        "entity_id": ["a"] * 4,
        "x": pl.Series(["0.10", "0.20", None, "-7.25"]).cast(pl.Decimal(12, 2)),
    }, schema_overrides={"bucket": pl.Datetime("us", "UTC")})
    want = {
        F.sum: (pl.Decimal(38, 2), [Decimal("0.30"), Decimal("-7.25")]),
        F.max: (pl.Decimal(12, 2), [Decimal("0.20"), Decimal("-7.25")]),
        F.min: (pl.Decimal(12, 2), [Decimal("0.10"), Decimal("-7.25")]),
        F.avg: (pl.Float64, [0.15, -7.25]),
        F.stddev: (pl.Float64, [math.sqrt((0.1 - 0.15) ** 2 + (0.2 - 0.15) ** 2), None]),
    }
    for function, (dtype, values) in want.items():
        got = decimate(frame, ["bucket", "entity_id"], {"x": function}, MONTH, "UTC")["x"]
        assert (got.dtype, got.to_list()) == (dtype, values), function
