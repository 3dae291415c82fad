"""Sums added strictly in row order, for every group of a frame at once.

``ordered_sum`` (a running sum's last value) is what makes a float sum the same bits on every
run, but in a polars ``group_by`` it runs group by group: a decimation's samples are millions
of groups of one or a few rows (one per stored timestamp and entity), and each costs
microseconds. Here a group is a run of equal keys in a frame sorted on them (rows of a group
in the order to add), and the additions go rank by rank across all groups at once: step ``k``
adds the ``k``-th value of every group that has one to its group's total, in one vectorised
operation. Each group still adds its values one by one from zero, left to right, exactly as
``cum_sum`` does, so the bits are the same as ``ordered_sum``'s (a lone ``-0.0`` sums to
``0.0`` in both). When few groups are left and they are long, each of them finishes with one
running sum (``numpy.add.accumulate``, which also adds left to right). Sums come in the
column's adding type (``source.sum_types``): Float64 for floats, Int128 for integers, whose
sums are exact in any order; numpy has no 128-bit integers, so integers are added in int64,
and come as Int64, only when no total can leave it, else by polars in Int128. Decimals are exact in any order
too: polars adds them in a 38-digit decimal where no total can pass it, else ``wide_sum``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from export_pipeline.store.source import (
    decimal_holds,
    exact_sum,
    int64_holds,
    largest_unscaled,
    ordered_sum,
    sum_or_null,
    sum_types,
    wide_sum,
    wide_totals,
)

if TYPE_CHECKING:
    import numpy as np


def run_starts(frame: pl.DataFrame, keys: list[str]) -> pl.Series:
    """Whether each row starts a run of equal ``keys`` (a null equals a null)."""
    first = pl.int_range(pl.len()) == 0
    changed = pl.any_horizontal(first, *(pl.col(k).ne_missing(pl.col(k).shift(1)) for k in keys))
    return frame.select(changed.alias("start")).to_series()


def ordered_sums(
    values: pl.Series, sizes: np.ndarray, names: dict[str, str] | None = None,
    labels: pl.DataFrame | None = None,
) -> pl.Series:
    """``ordered_sum`` of ``values`` per run, the runs being ``sizes`` rows long (each at
    least one, in order), in the adding type of ``sum_types`` (integers in Int64 where it
    holds every total): empty where a run has no value. A decimal total past 38 digits raises ``SumOutOfRange``, naming the column as
    ``names`` does and its run by its row of ``labels`` (one row per run)."""
    import numpy as np  # here, not at the top: a plain export never loads numpy

    types = sum_types(values.dtype)
    if types is not None and types[0].is_decimal():
        return _decimal_sums(values, sizes, names or {}, labels)
    if types is None or types[0].is_integer() and not _int64_exact(values, sizes):
        runs = pl.Series("run", np.repeat(np.arange(len(sizes)), sizes))
        frame = pl.DataFrame([runs, values.alias("value")])
        add = ordered_sum if types is None else lambda v: sum_or_null(v.cast(types[0]))
        summed = frame.group_by("run", maintain_order=True).agg(add(pl.col("value")))
        return summed["value"].alias(values.name)
    adding = types[0]
    # Integers come here only where int64 holds every total: they stay Int64, their exported
    # type. In Int128 a decimation's millions of samples took twice the memory, and as much
    # again while ``exported`` cast them back.
    result = pl.Int64 if adding.is_integer() else adding
    if len(values) == len(sizes):  # one row per run: zero plus its value (a null stays empty)
        value = pl.col(values.name).cast(result)
        if adding.is_float():  # 0.0 + x is x, but 0.0 for -0.0
            value = pl.when(value == 0).then(pl.lit(0.0, adding)).otherwise(value)
        return values.to_frame().select(value.alias(values.name)).to_series()
    lengths = sizes
    if values.null_count():  # the values each run has
        present = values.is_not_null().cast(pl.Int64).to_numpy()
        lengths = np.add.reduceat(present, np.cumsum(sizes) - sizes) if len(sizes) else sizes
    array = values.drop_nulls().cast(result).to_numpy()
    with np.errstate(all="ignore"):  # inf - inf is NaN, as in polars, without a warning
        totals = _running_totals(array, lengths)
    sums = pl.Series(values.name, totals).cast(result)
    empty = np.flatnonzero(lengths == 0)
    return sums.scatter(empty, None) if len(empty) else sums


def _decimal_sums(
    values: pl.Series, sizes: np.ndarray, names: dict[str, str], labels: pl.DataFrame | None
) -> pl.Series:
    """Each run's exact total of decimal ``values``, by polars where ``decimal_holds`` for the
    longest run, else by ``wide_sum`` (see ``ordered_sums``)."""
    import numpy as np

    name, widest = values.name, sum_types(values.dtype)[0]
    if len(values) == len(sizes):  # one row per run: its value is its total
        return values.cast(widest)
    longest = int(sizes.max()) if len(sizes) else 0
    run = pl.Series("run", np.repeat(np.arange(len(sizes)), sizes))
    runs = pl.DataFrame([run, values.alias("value")]).group_by("run", maintain_order=True)
    if decimal_holds(largest_unscaled(values), longest):
        return runs.agg(exact_sum(pl.col("value"), values.dtype))["value"].alias(name)
    summed = runs.agg(wide_sum(pl.col("value"), "value"))
    if labels is not None:
        summed = pl.concat([summed, labels], how="horizontal")
    described = {"value": names.get(name, f"column '{name}'")}
    keys = labels.columns if labels is not None else ["run"]
    return wide_totals(summed, {"value": values.dtype.scale}, described, keys)["value"].alias(name)


def _int64_exact(values: pl.Series, sizes: np.ndarray) -> bool:
    """Whether int64 holds every value and every partial sum of every run: the largest
    magnitude times the longest run stays below 2**63."""
    low, high = values.min(), values.max()
    if low is None or not len(sizes):
        return True
    return int64_holds(max(abs(int(low)), abs(int(high))), int(sizes.max()))


def _running_totals(array: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each run's values (consecutive in ``array``, ``lengths`` long) added left to right
    from zero."""
    import numpy as np

    totals = np.zeros(len(lengths), dtype=array.dtype)
    longest = int(lengths.max()) if len(lengths) else 0
    if longest <= 1:  # at most one value per run
        if len(array) == len(totals):
            return totals + array
        totals[lengths == 1] += array
        return totals
    starts = np.cumsum(lengths) - lengths
    active = np.flatnonzero(lengths)  # the runs that take a k-th value
    for k in range(longest):
        if k:
            active = active[lengths[active] > k]
        if len(active) < longest - k:  # a few long runs left: one running sum each
            for run in active:
                tail = array[starts[run] + k:starts[run] + lengths[run]]
                running = np.concatenate((totals[run:run + 1], tail))
                totals[run] = np.add.accumulate(running, dtype=array.dtype)[-1]
            break
        totals[active] += array[starts[active] + k]
    return totals


def group_ordered_sums(
    frame: pl.DataFrame, keys: list[str], values: list[str], one_row_per_key: bool = False,
    names: dict[str, str] | None = None,
) -> pl.DataFrame:
    """One row per run of equal ``keys`` in ``frame``, in order: the keys and ``ordered_sum``
    of each of ``values`` over the run's rows. With ``one_row_per_key`` (the caller knows no
    two rows share their keys) every row is its own run. ``names``: how an error names each
    of ``values`` (``ordered_sums``)."""
    import numpy as np

    if one_row_per_key:
        sizes, firsts = np.ones(frame.height, dtype=np.int64), frame.select(keys)
    else:
        starts = run_starts(frame, keys)
        sizes = np.diff(np.append(np.flatnonzero(starts.to_numpy()), frame.height))
        firsts = frame.select(keys).filter(starts)
    return firsts.with_columns(ordered_sums(frame[v], sizes, names, firsts) for v in values)


def in_order(frame: pl.DataFrame, columns: list[str]) -> bool:
    """Whether ``frame`` is already sorted on ``columns`` (ascending, nulls last), checked in one
    vectorised pass: fetched frames come in row-key order, and re-sorting two million sorted
    rows costs more than this check. Comparisons order as polars sorts: a NaN above every
    number, equal to another NaN, and nulls last."""
    if frame.height < 2 or not columns:
        return True
    after = pl.lit(True)
    for name in reversed(columns):
        current, previous = pl.col(name), pl.col(name).shift(1)
        before = (
            pl.when(previous.is_null()).then(False)
            .when(current.is_null()).then(True)
            .otherwise(previous < current)
        )
        after = before | (previous.eq_missing(current) & after)
    return bool(frame.select(after.slice(1).all()).item())


def sorted_on(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """``frame`` sorted on ``keys`` (ascending, nulls last), rows of equal keys left in their
    order; sorted only when it is not already (``in_order``)."""
    return frame if in_order(frame, keys) else frame.sort(keys, nulls_last=True, maintain_order=True)
