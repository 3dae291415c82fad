"""An independent, plain-Python export of a request over a Parquet store.

Written without polars expressions or any product code beyond the request model (its parsed
fields only), row by row, so the integration tests compare the product's files with numbers
computed another way: the long table, its ``wide`` and ``crosstab`` pivots, the ``expanded``
template, decimation (a bucket's function of its per-timestamp samples) and ``delta``.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq

from export_pipeline.contract.models import ExportRequest

EMPTY_LABEL = "(empty)"

# A decimation width, as the README lists them, to the calendar bucket it names.
DS_PERIODS = {
    "1m": "minute", "PT1M": "minute", "1h": "hour", "PT1H": "hour", "1d": "day", "P1D": "day",
    "1w": "week", "P1W": "week", "1mo": "month", "P1M": "month", "1q": "quarter", "P3M": "quarter",
    "1y": "year", "P1Y": "year",
}

FUNCTIONS = {
    "sum": math.fsum,
    "avg": statistics.fmean,
    "min": min,
    "max": max,
    "stddev": lambda s: statistics.stdev(s) if len(s) > 1 else None,
    "variance": lambda s: statistics.variance(s) if len(s) > 1 else None,
}


def _bucket(ts: datetime, period: str, tz: ZoneInfo) -> datetime:
    """The bucket start, cut in ``tz`` (a local day, week, month…): a day and longer at its
    first midnight; a start the clock jumps over, where the clock lands."""
    start = _wall_start(ts.astimezone(tz), period, tz)
    if start.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) == start.replace(tzinfo=None):
        return start
    lands = start.replace(fold=1).astimezone(timezone.utc)
    while lands.astimezone(tz).replace(tzinfo=None) < start.replace(tzinfo=None):
        lands += timedelta(minutes=1)
    return lands.astimezone(tz)


def _wall_start(ts: datetime, period: str, tz: ZoneInfo) -> datetime:
    if period == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    if period == "minute":
        return ts.replace(second=0, microsecond=0)
    day = datetime(ts.year, ts.month, ts.day, tzinfo=tz)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return day.replace(month=(ts.month - 1) // 3 * 3 + 1, day=1)
    if period == "year":
        return day.replace(month=1, day=1)
    raise ValueError(period)


def _next_bucket(start: datetime, period: str, tz: ZoneInfo) -> datetime:
    """The bucket after the one starting at ``start`` (wall-clock arithmetic for days and up)."""
    if period in ("minute", "hour"):
        step = timedelta(minutes=1) if period == "minute" else timedelta(hours=1)
        return (start.astimezone(timezone.utc) + step).astimezone(tz)
    if period in ("day", "week"):
        wall = start.replace(tzinfo=None) + timedelta(days=1 if period == "day" else 7)
        return wall.replace(tzinfo=tz)
    months = {"month": 1, "quarter": 3, "year": 12}[period]
    index = start.year * 12 + start.month - 1 + months
    return start.replace(year=index // 12, month=index % 12 + 1)


def _matches(value: str | None, wanted: str) -> bool:
    return value is not None and (value == wanted or value.startswith(wanted + ":"))


@lru_cache(maxsize=4)
def _read(store: str, stamp: tuple) -> tuple[dict, ...]:
    rows = []
    for file in sorted(Path(store).rglob("*.parquet")):
        for row in pq.read_table(file).to_pylist():
            ts = row["timestamp"]
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=timezone.utc)
            row["timestamp"] = ts
            rows.append(row)
    return tuple(rows)


def read_rows(store: Path) -> list[dict]:
    """Every stored row (read once per store and content)."""
    files = sorted(Path(store).rglob("*.parquet"))
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return [dict(r) for r in _read(str(store), stamp)]


def period_of(metric_request) -> str:
    if metric_request.decimation is not None:
        return DS_PERIODS[metric_request.decimation.ds]
    return metric_request.aggregation_period.value


def function_of(metric_request, column) -> str | None:
    """The column's decimation function, or None for a plain sum per bucket."""
    if metric_request.decimation is None:
        return None
    return (column.dsf or metric_request.decimation.dsf).value


def row_dimensions(request: ExportRequest) -> list[str]:
    """The store columns that key a row besides the bucket: ``rowFilters``, then the facets
    the ``expanded`` template breaks out."""
    dims = ["entity_id" if d == "entity" else d for d in request.csv_format.row_filters]
    if request.format.template.value == "expanded":
        for m in request.metric_requests:
            for facet in m.facets:
                if facet not in dims:
                    dims.append(facet)
    return dims


def expanded_facets(request: ExportRequest) -> list[str]:
    rows = ["entity_id" if d == "entity" else d for d in request.csv_format.row_filters]
    return row_dimensions(request)[len(rows):]


def _selected(row: dict, column) -> bool:
    return all(
        any(_matches(row[dim], v) for v in ([vals] if isinstance(vals, str) else vals))
        for dim, vals in (column.filter or {}).items()
    )


def reference_table(store: Path, request: ExportRequest) -> dict[tuple, dict[int, float | int | None]]:
    """(bucket, *row dimensions) -> {column index: value} for every metric column."""
    raw = read_rows(store)
    dims = row_dimensions(request)
    tz = ZoneInfo(request.format.timezone)
    table: dict[tuple, dict[int, float | int | None]] = {}
    for metric_request in request.metric_requests:
        columns = [
            (i, c) for i, c in enumerate(request.csv_format.columns)
            if c.metric_id is not None and c.metric_id == metric_request.metric_id
        ]
        period = period_of(metric_request)
        samples: dict[tuple, dict[int, dict[datetime, float]]] = defaultdict(lambda: defaultdict(dict))
        keys: set[tuple] = set()
        for row in raw:
            if not metric_request.start <= row["timestamp"] <= metric_request.end:
                continue
            if metric_request.entities and row["entity_id"] not in metric_request.entities:
                continue
            if metric_request.entity_type and row["entity_type"] != metric_request.entity_type:
                continue
            key = (_bucket(row["timestamp"], period, tz), *(row[d] for d in dims))
            cells = table.setdefault(key, {})
            keys.add(key)
            for i, column in columns:
                cells.setdefault(i, None)
                value = row[column.fetch_value]
                if not _selected(row, column) or value is None:
                    continue
                if function_of(metric_request, column) is None:
                    cells[i] = (cells[i] or 0) + value
                else:
                    at = samples[key][i]
                    at[row["timestamp"]] = at.get(row["timestamp"], 0) + value
        for key, by_column in samples.items():
            for i, column in columns:
                series = [v for _, v in sorted(by_column.get(i, {}).items())]
                table[key][i] = FUNCTIONS[function_of(metric_request, column)](series) if series else None
        if metric_request.transform is not None and metric_request.transform.value == "delta":
            _apply_delta(table, keys, [i for i, _ in columns], period, tz)
    return table


def _apply_delta(table: dict, keys: set[tuple], columns: list[int], period: str, tz: ZoneInfo) -> None:
    """Each value minus the previous bucket's of the same series; empty without one."""
    before = {key: dict(table[key]) for key in keys}
    following = {(_next_bucket(key[0], period, tz), *key[1:]): key for key in keys}
    for key in keys:
        previous = following.get(key)
        for i in columns:
            now = before[key].get(i)
            then = before[previous].get(i) if previous is not None else None
            table[key][i] = now - then if now is not None and then is not None else None


def _format(value, subdaily: bool) -> str:
    if isinstance(value, datetime):
        return value.isoformat() if subdaily else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


def _subdaily(request: ExportRequest) -> bool:
    return period_of(request.metric_requests[0]) in ("hour", "minute")


def reference_rows(store: Path, request: ExportRequest) -> list[list]:
    """The long table's rows as typed values (buckets as local datetimes), in the documented
    order, with the ``expanded`` facet columns after the request's columns."""
    table = reference_table(store, request)
    dims = row_dimensions(request)

    def cell(key: tuple, cells: dict, i: int):
        column = request.csv_format.columns[i]
        if column.metric_id is not None:
            return cells.get(i)
        name = column.field or column.heading.strip().lower()
        if name == "date":
            return key[0]
        dim = "entity_id" if name == "entity" else name
        return key[1 + dims.index(dim)]

    def sort_key(item):
        key, cells = item
        parts = []
        for i in request.csv_format.sort_by:
            value = cell(key, cells, i)
            parts.append((value is None, value if value is not None else 0))
        parts += [(k is None, k if k is not None else "") for k in key]
        return parts

    facets = expanded_facets(request)
    out = []
    for key, cells in sorted(table.items(), key=sort_key):
        row = [cell(key, cells, i) for i in range(len(request.csv_format.columns))]
        row += [key[1 + dims.index(f)] for f in facets]
        out.append(row)
    return out


def reference_csv_rows(store: Path, request: ExportRequest) -> list[list[str]]:
    """The expected data rows (no header), as strings, in the documented order."""
    subdaily = _subdaily(request)
    return [[_format(v, subdaily) for v in row] for row in reference_rows(store, request)]


def _series_label(series: tuple) -> str:
    return ", ".join(EMPTY_LABEL if v is None else str(v) for v in series)


def _none_last(values: tuple) -> tuple:
    return tuple((v is None, v if v is not None else "") for v in values)


def _metric_columns(request: ExportRequest) -> list[tuple[int, str]]:
    return [(i, c.heading) for i, c in enumerate(request.csv_format.columns) if c.metric_id is not None]


def reference_wide(store: Path, request: ExportRequest) -> list[list[str]]:
    """Header and rows of the ``wide`` layout: a row per bucket that has data, a column per
    series (ascending, empty last) and metric column (in request order)."""
    table = reference_table(store, request)
    subdaily = _subdaily(request)
    metrics = _metric_columns(request)
    date_heading = next(c.heading for c in request.csv_format.columns
                        if c.metric_id is None and (c.field or c.heading.strip().lower()) == "date")
    series = sorted({key[1:] for key in table}, key=_none_last)
    keyed = len(series[0]) > 0 if series else False
    header = [date_heading] + [
        f"{heading} ({_series_label(s)})" if keyed else heading for s in series for _, heading in metrics
    ]
    rows = []
    for bucket in sorted({key[0] for key in table}):
        row = [_format(bucket, subdaily)]
        for s in series:
            cells = table.get((bucket, *s), {})
            row += [_format(cells.get(i), subdaily) for i, _ in metrics]
        rows.append(row)
    return [header, *rows]


def all_buckets(request: ExportRequest) -> list[datetime]:
    """Every bucket start from the one holding the earliest ``start`` to the latest ``end``."""
    tz = ZoneInfo(request.format.timezone)
    period = period_of(request.metric_requests[0])
    start = min(m.start for m in request.metric_requests)
    end = max(m.end for m in request.metric_requests)
    buckets = [_bucket(start, period, tz)]
    while (following := _next_bucket(buckets[-1], period, tz)) <= end:
        buckets.append(following)
    return buckets


def reference_crosstab(store: Path, request: ExportRequest) -> list[list[str]]:
    """Header and rows of the ``crosstab`` layout: a row per series (and metric column when
    there are several), a column per bucket of the range, empty buckets included."""
    table = reference_table(store, request)
    subdaily = _subdaily(request)
    metrics = _metric_columns(request)
    dims = row_dimensions(request)
    shown = [
        (c.heading, dims.index("entity_id" if (c.field or c.heading.strip().lower()) == "entity"
                               else (c.field or c.heading.strip().lower())))
        for c in request.csv_format.columns
        if c.metric_id is None and (c.field or c.heading.strip().lower()) != "date"
    ]
    buckets = all_buckets(request)
    header = [h for h, _ in shown] + (["Metric"] if len(metrics) > 1 else [])
    header += [_format(b, subdaily) for b in buckets]
    rows = []
    for s in sorted({key[1:] for key in table}, key=_none_last):
        for i, heading in metrics:
            row = ["" if s[j] is None else str(s[j]) for _, j in shown]
            row += [heading] if len(metrics) > 1 else []
            row += [_format(table.get((b, *s), {}).get(i), subdaily) for b in buckets]
            rows.append(row)
    return [header, *rows]
