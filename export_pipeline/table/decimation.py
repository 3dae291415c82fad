"""A decimated bucket's cell: its ``dsf`` (sum, avg, min, max, stddev, variance) of the samples.

The samples of a bucket are taken in time order and every sum is added strictly in that order
(``store.ordered``), so a cell has the same bits on every run, however the range was cut into
windows. One group-by finds each bucket's samples, in time order, and all buckets are then
computed together: ``avg`` is the ordered sum over the count, ``variance`` the ordered
sum of the squared deviations from that mean over ``n - 1`` (two passes, for accuracy; empty
below two samples), ``stddev`` its square root; ``min`` and ``max`` are polars' own. A null is
no sample.
"""

from __future__ import annotations

import math

import polars as pl

from export_pipeline.contract.models import DecimationFunction
from export_pipeline.store.ordered import ordered_sums
from export_pipeline.store.source import BUCKET
from export_pipeline.timeline.periods import Granularity, bucket_expr

_RUN = "__bucket_run"
_ROW = "__sample_row"
_BUCKET_ID = "__bucket_id"
CODE_LIMIT = 2**63


def decimate(
    samples: pl.DataFrame,
    keys: list[str],
    functions: dict[str, DecimationFunction],
    granularity: Granularity,
    time_zone: str,
    names: dict[str, str] | None = None,
) -> pl.DataFrame:
    """One row per bucket of ``granularity`` and row keys: the keys and, for each column of
    ``functions``, its function of the bucket's samples. ``samples`` holds one row per stored
    timestamp (``bucket``, in ``time_zone``) and row keys, in time order; the buckets come in
    the order of their first sample, cut by the rule every plain sum is cut by
    (``bucket_expr``). ``names``: how an error names each column (a decimal sum past 38
    digits).

    Decimal samples keep their digits in ``sum``, ``min`` and ``max``; ``avg``, ``stddev`` and
    ``variance`` are floats, taken from the exact total and the samples as Float64."""
    import numpy as np  # here, not at the top: a plain export never loads numpy

    span = (samples[BUCKET].min(), samples[BUCKET].max()) if samples.height else None
    bucket = bucket_expr(BUCKET, granularity, time_zone, span)

    if not samples[BUCKET].is_sorted():
        samples = samples.sort(keys, nulls_last=True)
    # Within a group, polars keeps the rows in their order: each bucket's samples in time order.
    buckets = (
        _bucket_ids(samples, keys, bucket).to_frame()
        .with_row_index(_ROW)
        .group_by(_BUCKET_ID, maintain_order=True)
        .agg(_ROW)
    )
    lengths = buckets[_ROW].list.len().cast(pl.Int64).to_numpy()
    rows = buckets[_ROW].explode()
    runs = pl.Series(_RUN, np.repeat(np.arange(buckets.height), lengths)).set_sorted()
    firsts = samples.select(keys).gather(buckets[_ROW].list.first())
    firsts = firsts.with_columns(bucket.alias(BUCKET))
    cells = []
    for name, function in functions.items():
        values = samples[name].gather(rows)
        per_bucket = pl.DataFrame([runs, values]).group_by(_RUN, maintain_order=True)
        if function in (DecimationFunction.min, DecimationFunction.max):
            extreme = pl.col(name).min() if function is DecimationFunction.min else pl.col(name).max()
            cells.append(per_bucket.agg(extreme)[name])
            continue
        total = ordered_sums(values, lengths, names, firsts).alias("__total")
        if function is DecimationFunction.sum:
            cells.append(total.alias(name))
            continue
        if values.dtype.is_decimal():
            total, values = total.cast(pl.Float64), values.cast(pl.Float64)
        stats = per_bucket.agg(pl.col(name).count().alias("__n")).with_columns(total)
        stats = stats.with_columns((pl.col("__total") / pl.col("__n")).alias("__mean"))
        if function is DecimationFunction.avg:
            cells.append(stats["__mean"].alias(name))
            continue
        deviations = pl.DataFrame([values, stats["__mean"].gather(runs)]).select(
            ((pl.col(name) - pl.col("__mean")) ** 2).alias(name)
        )[name]
        stats = stats.with_columns(
            ordered_sums(deviations, lengths).alias("__squares")
        )
        variance = pl.when(pl.col("__n") > 1).then(pl.col("__squares") / (pl.col("__n") - 1))
        if function is DecimationFunction.stddev:
            variance = variance.sqrt()
        cells.append(stats.select(variance.alias(name))[name])
    return firsts.with_columns(*cells)


def _bucket_ids(samples: pl.DataFrame, keys: list[str], bucket: pl.Expr) -> pl.Series:
    """A number per row naming its bucket and row keys: the bucket's rank in time (the samples
    are in time order), then each other key's category code (a null its own), in mixed radix;
    the keys themselves when the codes would not fit in 64 bits. Grouping on one integer is a
    fraction of the cost of grouping on a timestamp and strings."""
    others = [k for k in keys if k != BUCKET]
    codes = samples.select(
        bucket.rle_id().cast(pl.UInt64).alias(BUCKET),
        *(pl.col(k).cast(pl.Categorical).to_physical().cast(pl.UInt64).alias(k) for k in others),
    )
    highest = codes.max().row(0) if codes.height else (0,) * len(keys)
    radixes = [(h or 0) + 2 for h in highest[1:]]  # codes 0..h, and h + 1 for a null
    if math.prod([(highest[0] or 0) + 1, *radixes]) >= CODE_LIMIT:
        keyed = pl.struct(bucket.alias(BUCKET), *others)
        return samples.select(keyed.rank("dense").alias(_BUCKET_ID)).to_series()
    number = pl.col(BUCKET)
    for k, radix in zip(others, radixes):
        number = number * radix + pl.col(k).fill_null(radix - 1)
    return codes.select(number.alias(_BUCKET_ID)).to_series()
