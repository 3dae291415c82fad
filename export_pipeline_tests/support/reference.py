"""An independent, plain-Python export of a request over a Parquet store.

Written without polars expressions or any product code beyond the request model, row by row,
so the integration tests compare the product's CSV with numbers computed another way.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq

from export_pipeline.contract.models import ExportRequest


def _bucket(ts: datetime, period: str, tz: ZoneInfo) -> datetime:
    """The bucket start, cut in ``tz`` (a local day, week, month…)."""
    ts = ts.astimezone(tz)
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


def _matches(value: str | None, wanted: str) -> bool:
    return value is not None and (value == wanted or value.startswith(wanted + ":"))


def read_rows(store: Path) -> list[dict]:
    rows = []
    for file in sorted(Path(store).rglob("*.parquet")):
        for row in pq.read_table(file).to_pylist():
            ts = row["timestamp"]
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=timezone.utc)
            row["timestamp"] = ts
            rows.append(row)
    return rows


def reference_csv_rows(store: Path, request: ExportRequest) -> list[list[str]]:
    """The expected data rows (no header), as strings, in the documented order."""
    raw = read_rows(store)
    row_dims = ["entity_id" if d == "entity" else d for d in request.csv_format.row_filters]
    table: dict[tuple, dict[int, float | int | None]] = {}
    for metric_request in request.metric_requests:
        columns = [
            (i, c) for i, c in enumerate(request.csv_format.columns)
            if c.metric_id is not None and c.metric_id == metric_request.metric_id
        ]
        period = metric_request.aggregation_period.value
        tz = ZoneInfo(request.format.timezone)
        for row in raw:
            if not metric_request.start <= row["timestamp"] <= metric_request.end:
                continue
            if metric_request.entities and row["entity_id"] not in metric_request.entities:
                continue
            if metric_request.entity_type and row["entity_type"] != metric_request.entity_type:
                continue
            key = (_bucket(row["timestamp"], period, tz), *(row[d] for d in row_dims))
            cells = table.setdefault(key, {})
            for i, column in columns:
                cells.setdefault(i, None)
                selected = all(
                    any(_matches(row[dim], v) for v in ([vals] if isinstance(vals, str) else vals))
                    for dim, vals in (column.filter or {}).items()
                )
                value = row[column.fetch_value]
                if selected and value is not None:
                    cells[i] = (cells[i] or 0) + value
    subdaily = request.metric_requests[0].aggregation_period.value in ("hour", "minute")

    def cell(key: tuple, cells: dict, i: int):
        column = request.csv_format.columns[i]
        if column.metric_id is not None:
            return cells.get(i)
        name = column.field or column.heading.strip().lower()
        if name == "date":
            return key[0]
        dim = "entity_id" if name == "entity" else name
        return key[1 + row_dims.index(dim)]

    def sort_key(item):
        key, cells = item
        parts = []
        for i in request.csv_format.sort_by:
            value = cell(key, cells, i)
            parts.append((value is None, value if value is not None else 0))
        parts += [(k is None, k if k is not None else "") for k in key]
        return parts

    out = []
    for key, cells in sorted(table.items(), key=sort_key):
        row = []
        for i in range(len(request.csv_format.columns)):
            value = cell(key, cells, i)
            if isinstance(value, datetime):
                value = value.isoformat() if subdaily else value.date().isoformat()
            elif isinstance(value, date):
                value = value.isoformat()
            row.append("" if value is None else str(value))
        out.append(row)
    return out
