"""Sums added in row order for all groups at once: every group's sum is its values added one
by one from zero, left to right, checked against plain Python loops (ties, NaN, infinities,
nulls, negative zero, empty groups, integer totals beyond Int64, Float32, decimals)."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from export_pipeline.store.ordered import group_ordered_sums, in_order, sorted_on


def left_to_right(values: list, start=0.0):
    """The sum a running sum ends on: nulls skipped, nothing to add is no sum."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    total = start
    for v in present:
        total = total + v
    return total


def groups_of(frame: pl.DataFrame, keys: list[str], value: str) -> dict[tuple, list]:
    groups: dict[tuple, list] = {}
    for row in frame.iter_rows(named=True):
        groups.setdefault(tuple(row[k] for k in keys), []).append(row[value])
    return groups


def same_float(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


def random_frame(seed: int, rows: int, groups: int) -> pl.DataFrame:
    """Rows sorted on (g, k) with runs of every length, awkward floats and nulls."""
    rng = random.Random(seed)
    specials = [-0.0, 0.0, math.nan, math.inf, -math.inf, None, 1e16, 1e-300]
    keys = [(rng.randrange(groups), rng.choice(["a", "b", None])) for _ in range(rows)]
    keys.sort(key=lambda k: (k[0], k[1] is None, k[1] or ""))
    floats = [
        rng.choice(specials) if rng.random() < 0.15 else rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-8, 8)
        for _ in range(rows)
    ]
    return pl.DataFrame({
        "g": [k[0] for k in keys],
        "k": [k[1] for k in keys],
        "f": floats,
        "i": [None if rng.random() < 0.1 else rng.randint(-2**62, 2**62) for _ in range(rows)],
    }, schema={"g": pl.Int64, "k": pl.String, "f": pl.Float64, "i": pl.Int64})


@pytest.mark.parametrize("seed, rows, groups", [(1, 400, 7), (2, 3000, 900), (3, 2000, 2000), (4, 0, 1)])
def test_every_group_adds_its_values_left_to_right(seed, rows, groups):
    frame = random_frame(seed, rows, groups)
    keys = ["g", "k"]
    summed = group_ordered_sums(frame, keys, ["f", "i"])
    floats, ints = groups_of(frame, keys, "f"), groups_of(frame, keys, "i")
    assert [tuple(r) for r in summed.select(keys).rows()] == list(floats)  # runs, in order
    # Int64 where no total can leave it (here: no rows), else Int128
    exact_type = pl.Int64 if rows == 0 else pl.Int128
    assert summed.schema == pl.Schema({"g": pl.Int64, "k": pl.String, "f": pl.Float64, "i": exact_type})
    for (g, k, f, i), values in zip(summed.rows(), floats.values()):
        assert same_float(f, left_to_right(values)), (g, k, values)
    for (g, k, f, i), values in zip(summed.rows(), ints.values()):
        assert i == left_to_right(values, 0)  # exact: Python ints, no wrap-around


def test_one_row_per_key_turns_a_negative_zero_into_zero_and_keeps_nulls():
    frame = pl.DataFrame({"g": [1, 2, 3, 4], "f": [-0.0, None, math.nan, 2.5]})
    summed = group_ordered_sums(frame, ["g"], ["f"])
    assert [same_float(a, b) for a, b in zip(summed["f"].to_list(), [0.0, None, math.nan, 2.5])] == [True] * 4


def test_long_groups_add_strictly_in_order_not_pairwise():
    """1e16 + 1 rounds back to 1e16: added one by one, a thousand ones are all lost; a pairwise
    or blocked sum would add them up first and keep them."""
    values = [1e16] + [1.0] * 1000
    frame = pl.DataFrame({"g": [0] * len(values) + [1] * 3 + [2], "f": values + [1.0, 2.0, 3.0, 5.0]})
    summed = group_ordered_sums(frame, ["g"], ["f"])
    assert summed["f"].to_list() == [1e16, 6.0, 5.0]
    reversed_frame = pl.DataFrame({"g": [0] * len(values), "f": values[::-1]})
    assert group_ordered_sums(reversed_frame, ["g"], ["f"])["f"].to_list() == [1e16 + 1000]


def test_many_groups_of_many_lengths_match_python():
    rng = np.random.default_rng(7)
    lengths = np.r_[rng.integers(1, 40, 3000), [5000, 2500]]
    group = np.repeat(np.arange(len(lengths)), lengths)
    values = rng.normal(0, 1, len(group)) * 10.0 ** rng.integers(-10, 10, len(group))
    frame = pl.DataFrame({"g": group, "f": values})
    summed = group_ordered_sums(frame, ["g"], ["f"])["f"].to_list()
    starts = np.cumsum(lengths) - lengths
    expected = [left_to_right(values[s:s + n].tolist()) for s, n in zip(starts, lengths)]
    assert summed == expected


def test_float32_sums_in_float64_and_integers_exactly():
    """A Float32 column is added in Float64 (its stored values, exactly widened) and stays
    Float64: 16777216 + 1 is 16777217, not rounded back to Float32. Integers of any width are
    added exactly, never wrapping: here in Int64, which holds every total."""
    frame = pl.DataFrame({
        "g": [0, 0, 0, 1],
        "f32": pl.Series([0.1, 0.2, 0.3, -0.0], dtype=pl.Float32),
        "big32": pl.Series([16777216.0, 1.0, None, 2.0], dtype=pl.Float32),
        "i32": pl.Series([2**31 - 1, 1, 5, 7], dtype=pl.Int32),
        "u32": pl.Series([2**32 - 1, 2**32 - 1, 2, 7], dtype=pl.UInt32),
        "i8": pl.Series([100, 100, 100, -3], dtype=pl.Int8),
    })
    summed = group_ordered_sums(frame, ["g"], ["f32", "big32", "i32", "u32", "i8"])
    assert summed.schema["f32"] == pl.Float64 and summed.schema["big32"] == pl.Float64
    assert summed.schema["i32"] == summed.schema["u32"] == summed.schema["i8"] == pl.Int64
    f32 = [float(np.float32(x)) for x in (0.1, 0.2, 0.3)]
    assert summed["f32"].to_list() == [f32[0] + f32[1] + f32[2], 0.0]
    assert summed["big32"].to_list() == [16777217.0, 2.0]
    assert summed["i32"].to_list() == [2**31 + 5, 7]
    assert summed["u32"].to_list() == [2 * (2**32 - 1) + 2, 7]
    assert summed["i8"].to_list() == [300, -3]


@pytest.mark.parametrize("values, dtype", [
    ([2**62, 2**62, 5], pl.Int128),  # past Int64: added by polars in Int128
    ([-2**63, -1, 2**63 - 1], pl.Int128),  # the extremes: the partial sums leave Int64
    ([3, -4, 1000], pl.Int64),  # small: added in int64 by numpy, already the exported type
])
def test_integer_sums_are_exact_whichever_way_they_are_added(values, dtype):
    frame = pl.DataFrame({"g": [0] * len(values) + [1, 1], "i": values + [None, 7]},
                         schema={"g": pl.Int64, "i": pl.Int64})
    summed = group_ordered_sums(frame, ["g"], ["i"])
    assert summed["i"].dtype == dtype
    assert summed["i"].to_list() == [sum(values), 7]


def test_decimals_are_summed_too():
    frame = pl.DataFrame({"g": [0, 0, 1], "d": [Decimal("1.10"), Decimal("2.25"), None]},
                         schema={"g": pl.Int64, "d": pl.Decimal(10, 2)})
    summed = group_ordered_sums(frame, ["g"], ["d"])
    assert summed["d"].dtype == pl.Decimal(38, 2)
    assert summed["d"].to_list() == [Decimal("3.35"), None]


MOST = "9" * 36 + ".99"  # the largest 38-digit decimal of scale 2


def test_decimal_sums_near_38_digits_are_exact_or_fail_naming_their_run():
    """Running totals past 38 digits that end inside them are exact; a total past them fails
    naming the column and its run's keys, never wraps."""
    from export_pipeline.store.source import SumOutOfRange

    values = [MOST, MOST, "-" + MOST, "0.01", "-0.01", None, MOST, "-" + MOST, "-" + MOST, "-0.01"]
    frame = pl.DataFrame({
        "g": [0, 0, 0, 0, 0, 1, 2, 2, 2, 2],
        "d": pl.Series(values, dtype=pl.String).cast(pl.Decimal(38, 2)),
    })
    assert group_ordered_sums(frame.filter(pl.col("g") < 2), ["g"], ["d"])["d"].to_list() == [
        Decimal(MOST), None]
    # -(10**36), one cent past the smallest 38-digit decimal
    with pytest.raises(SumOutOfRange, match=r"^amount: the sum -1(0{36})\.00 \(g 2\) does not fit"):
        group_ordered_sums(frame, ["g"], ["d"], names={"d": "amount"})


def test_sorted_on_keeps_the_order_of_equal_keys_and_sorts_only_when_needed():
    frame = pl.DataFrame({"k": ["b", None, "a", "b", "a"], "v": [1, 2, 3, 4, 5]})
    result = sorted_on(frame, ["k"])
    assert result.rows() == [("a", 3), ("a", 5), ("b", 1), ("b", 4), (None, 2)]
    assert in_order(result, ["k"])
    assert sorted_on(result, ["k"]) is result
