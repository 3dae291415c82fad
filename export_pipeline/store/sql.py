"""A SQL table as the metric store: the whole fetch runs in the engine, only the export's rows
come back into polars (as Arrow from DuckDB; through ``COPY … TO STDOUT`` from PostgreSQL,
which has no Arrow output).

One ibis expression per query (filters, the time-zone bucketing, the group-by and the sums)
is compiled by ibis to the engine's SQL, so the same code runs on DuckDB and PostgreSQL (tested)
and compiles for ClickHouse, BigQuery, Snowflake, Trino and the other ibis backends.

Buckets are cut exactly as ``timeline.periods.bucket_expr`` cuts them in polars, without
relying on the engine's time-zone database or session zone: the zone's UTC offsets over the
query's span are read from Python's ``zoneinfo`` and written into the query as constants
(a ``CASE`` on the epoch second), the local wall-clock second is truncated to the bucket
width by integer arithmetic (epoch-aligned as polars is), and turned back into a UTC instant
with polars' rules for a repeated or a skipped local time, and the starts a clock change
skips or repeats as ``timeline.clock_changes`` reads them. Calendar buckets (months, quarters,
years) are few per window: their UTC starts are computed in Python and matched in a ``CASE``.
The bucket leaves the engine as an epoch second and becomes a zoned datetime in polars.

The frame is the Parquet source's frame, column for column: ``bucket`` (in the query's zone),
``entity_id``, the query's dimensions (strings) and the measures' sums, sorted the same way.
The sums follow ``source.sum_types`` as the Parquet source's do: the engine adds integers
exactly (PostgreSQL in bigint or numeric, DuckDB in HUGEINT) and the total leaves as a
38-digit decimal, checked into Int64 by ``source.exported``; a float column is cast to double
before it is added (PostgreSQL sums a ``real`` in ``real``); a decimal is added exactly and
becomes a 38-digit decimal of its own scale, the Parquet source's type and digits. A decimal
total past 38 digits fails as the Parquet source's does, naming the measure, the exact total
and the row: PostgreSQL's is read as text and checked; DuckDB refuses such a sum itself (or a
running total past its 128-bit integers, which may end inside 38 digits), and the query is
then read once more with each decimal in wide form (``_wide_sum``), which cannot overflow and
gives ``source.wide_totals`` the exact totals. Samples (``query.samples``) are summed per
stored timestamp; the engine adds them in its own order, so a float sum matches the Parquet
source's to the last bit only when the values add exactly (integers, binary fractions).
"""

from __future__ import annotations

import io
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

import polars as pl

from export_pipeline.store.source import (
    BUCKET,
    DECIMAL_DIGITS,
    ENTITY_ID,
    ENTITY_TYPE,
    HALF_DIGITS,
    TIMESTAMP,
    MetricQuery,
    MetricSourceError,
    StoreSchema,
    exported,
    measure_names,
    sum_types,
    wide_names,
    wide_totals,
)
from export_pipeline.store.sql_url import SqlTarget, SqlUrlError
from export_pipeline.timeline.clock_changes import BucketFix, bucket_fixes, offset_segments
from export_pipeline.timeline.periods import UTC, AggregationPeriod, Granularity, as_granularity

_UNIT_SECONDS = {
    AggregationPeriod.minute: 60,
    AggregationPeriod.hour: 3600,
    AggregationPeriod.day: 86400,
    AggregationPeriod.week: 7 * 86400,
}
# polars aligns multi-week buckets on Monday 1970-01-05, the other fixed widths on the epoch.
_ORIGIN = {AggregationPeriod.week: 4 * 86400}
_MONTHS = {AggregationPeriod.month: 1, AggregationPeriod.quarter: 3, AggregationPeriod.year: 12}


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns of the table play the store model's parts.

    ``timestamp``, ``entity_id`` and ``entity_type`` name the table's columns for those parts
    (requests still say ``entity`` and ``entity_type``). ``measures`` and ``dimensions`` list
    the numeric and string columns a request may use; ``None`` means every such column, as
    in a Parquet store.
    """

    timestamp: str = TIMESTAMP
    entity_id: str = ENTITY_ID
    entity_type: str = ENTITY_TYPE
    measures: tuple[str, ...] | None = None
    dimensions: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, columns: str = "", measures: str = "", dimensions: str = "") -> ColumnMapping:
        """``timestamp=ts,entity_id=site_id,entity_type=kind`` and comma-separated lists."""
        renames: dict[str, str] = {}
        for part in (p.strip() for p in columns.split(",") if p.strip()):
            role, sep, column = (s.strip() for s in part.partition("="))
            if not sep or role not in (TIMESTAMP, ENTITY_ID, ENTITY_TYPE) or not column:
                raise MetricSourceError(
                    f"metric columns: {part!r} is not timestamp=COLUMN, entity_id=COLUMN or "
                    "entity_type=COLUMN"
                )
            renames[role] = column

        def names(text: str) -> tuple[str, ...] | None:
            listed = tuple(n.strip() for n in text.split(",") if n.strip())
            return listed or None

        return cls(**renames, measures=names(measures), dimensions=names(dimensions))


# --- transient errors -------------------------------------------------------------------------

# SQLSTATEs worth a second try: serialization failure, deadlock, too many connections, the
# server shutting down or not yet accepting connections, and the connection-exception class.
_TRANSIENT_STATES = {"40001", "40P01", "53300", "57P01", "57P02", "57P03"}

# How long ``close`` keeps cancelling a running statement before closing its connection anyway.
_CLOSE_WAIT_SECONDS = 30.0


def is_transient(error: BaseException) -> bool:
    state = getattr(error, "sqlstate", None)
    if state and (state in _TRANSIENT_STATES or state.startswith("08")):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the sql extra installs it
        return False
    return isinstance(error, psycopg.OperationalError) and state is None and (
        "connection" in str(error).lower() and "refused" not in str(error).lower()
    )


# --- the source -------------------------------------------------------------------------------


class SqlMetricSource:
    """One table of a SQL engine, read through one ibis connection (opened on first use,
    closed by ``close``)."""

    def __init__(
        self,
        url: str,
        table: str = "metrics",
        columns: ColumnMapping | None = None,
        *,
        statement_timeout_seconds: float = 600.0,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        application_name: str = "export_pipeline",
    ):
        try:
            self.target = SqlTarget.parse(url)
        except SqlUrlError as error:
            raise MetricSourceError(f"metric source: {error}") from None
        self.table_name = table
        self.columns = columns or ColumnMapping()
        self.statement_timeout_seconds = statement_timeout_seconds
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.application_name = application_name
        self._lock = threading.Lock()
        self._busy = threading.Lock()  # held while a statement runs
        self._con: Any = None
        self._closes = 0  # how many times ``close`` has run: a fetch begun before one stops
        self._layout: _Layout | None = None
        self.rows_fetched = 0

    @property
    def path(self) -> str:
        """Where the rows come from, for messages: the database (no credentials) and table."""
        return f"{self.target.describe()}#{self.table_name}"

    def __repr__(self) -> str:
        return f"SqlMetricSource({self.path})"

    # connection ---------------------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            import ibis
        except ImportError:
            raise MetricSourceError(f"metric source {self.path}: a SQL source needs ibis: "
                                    "pip install 'export-pipeline[sql]'") from None

        target = self.target
        if target.scheme == "duckdb":
            con = ibis.duckdb.connect(target.path, read_only=True)
            con.raw_sql("SET TimeZone = 'UTC'")
            return con
        kwargs: dict[str, Any] = dict(target.options)
        kwargs.setdefault("application_name", self.application_name)
        kwargs.setdefault("connect_timeout", 10)
        # Timestamps are written in UTC (a samples bucket is read back from text).
        options = f"{kwargs.get('options', '')} -c TimeZone=UTC"
        if self.statement_timeout_seconds:
            options += f" -c statement_timeout={int(self.statement_timeout_seconds * 1000)}"
        kwargs["options"] = options.strip()
        return ibis.postgres.connect(
            host=target.host or None, port=target.port, database=target.database or None,
            user=target.user, **kwargs,
        )

    def connection(self, closes: int | None = None) -> Any:
        """The open connection (opened now if need be). Given the ``closes`` count a fetch
        began under, raise instead once the source has been closed since: the fetch is
        cancelled, and must not open a connection that ``close`` will never see."""
        with self._lock:
            if closes is not None and closes != self._closes:
                raise MetricSourceError(
                    f"metric source {self.path}: the read was cancelled (the source was closed)")
            if self._con is None:
                self._con = self._retrying("connect to", self._connect)
            return self._con

    def close(self) -> None:
        """Cancel whatever still runs and close the connection (idempotent). The cancel is
        sent again each second until the running statement has returned (a cancel request
        can be lost or time out on a busy server, or land just before the statement starts),
        for up to ``_CLOSE_WAIT_SECONDS``; only then is the connection closed: closing it under
        a running fetch would leave that fetch waiting on a dead socket."""
        with self._lock:
            con, self._con = self._con, None
            self._closes += 1
        if con is None:
            return
        deadline = time.monotonic() + _CLOSE_WAIT_SECONDS
        idle = False
        while not idle and time.monotonic() < deadline:
            self._cancel(con)
            idle = self._busy.acquire(timeout=1)
        try:
            con.disconnect()
        except Exception:
            pass
        finally:
            if idle:
                self._busy.release()

    def _cancel(self, con: Any) -> None:
        """Ask the engine to stop ``con``'s statement. Best effort, by design: the callers
        send it again or are already failing; a cancel with nothing running is a no-op."""
        raw = getattr(con, "con", None)
        try:
            if self.target.scheme == "duckdb":
                raw.interrupt()
            else:
                raw.cancel_safe(timeout=5)
        except Exception:
            pass

    def __enter__(self) -> SqlMetricSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _retrying(self, doing: str, call: Callable[[], Any]) -> Any:
        """``call``, tried again ``retries`` times (backoff doubling from ``backoff_seconds``)
        on a transient engine error; any other failure becomes one clear line."""
        attempt = 0
        while True:
            try:
                return call()
            except MetricSourceError:
                raise
            except Exception as error:
                if is_transient(error) and attempt < self.retries:
                    time.sleep(self.backoff_seconds * 2**attempt)
                    attempt += 1
                    if doing != "connect to":
                        self._reset()
                    continue
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise MetricSourceError(
                    f"cannot {doing} metric source {self.path}{tries}: {_first_line(error)}"
                ) from error

    def _reset(self) -> None:
        """Drop a connection a transient error may have broken; the next use reconnects."""
        with self._lock:
            con, self._con = self._con, None
        if con is not None:
            try:
                con.disconnect()
            except Exception:
                pass

    # schema -------------------------------------------------------------------------------

    def _table(self, closes: int | None = None) -> Any:
        con = self.connection(closes)
        database, _, name = self.table_name.rpartition(".")
        try:
            return con.table(name, database=database or None)
        except Exception as error:
            if is_transient(error):
                raise
            raise MetricSourceError(
                f"metric source {self.target.describe()} has no table {self.table_name!r} "
                f"({_first_line(error)})"
            ) from error

    def layout(self) -> _Layout:
        if self._layout is None:
            table = self._retrying("read", self._table)
            self._layout = _Layout.of(table.schema(), self.columns, self.path)
        return self._layout

    def schema(self) -> StoreSchema:
        layout = self.layout()
        return StoreSchema(dimensions=layout.dimensions, measures=layout.measures)

    # fetch --------------------------------------------------------------------------------

    def expression(self, query: MetricQuery) -> Any:
        """The ibis expression answering ``query`` on the bound table."""
        return build_expression(self._retrying("read", self._table), self.layout(), query)

    def fetch(self, query: MetricQuery) -> pl.DataFrame:
        layout = self.layout()
        closes = self._closes

        def run() -> tuple[pl.DataFrame, bool]:
            table = self._table(closes)
            expr = build_expression(table, layout, query)
            with self._busy:
                con = self.connection(closes)
                try:
                    if self.target.scheme == "postgres":
                        return self._copy_out(con, expr, layout, query), False
                    try:
                        return _arrow(expr), False
                    except Exception as error:
                        if not self._overflowed(error, layout, query, closes):
                            raise
                    return _arrow(build_expression(table, layout, query, wide=True)), True
                except BaseException:
                    # An interrupt (or any failure) leaves no statement running in the engine.
                    self._cancel(con)
                    raise

        frame, wide = self._retrying("read", run)
        self.rows_fetched += frame.height
        return to_frame(frame, layout, query, wide)

    def _overflowed(self, error: Exception, layout: _Layout, query: MetricQuery, closes: int) -> bool:
        """Whether DuckDB failed a query with decimal measures on a number out of its range:
        a total past 38 digits, or a running total past its 128-bit integers that may still
        end inside them. The query is then read again in wide form (``build_expression``),
        which cannot overflow and gives the Parquet source's totals, or its error naming the
        row; unless the source was closed meanwhile (its query cancelled)."""
        import duckdb

        return (
            isinstance(error, duckdb.OutOfRangeException)
            and closes == self._closes
            and any(layout.measure_types[m].is_decimal() for m in query.measures)
        )

    def _copy_out(self, con: Any, expr: Any, layout: _Layout, query: MetricQuery) -> pl.DataFrame:
        """PostgreSQL has no Arrow output: its fastest is ``COPY (the compiled query) TO
        STDOUT`` as CSV, read by polars' CSV reader (a third of the time of fetching rows
        through the driver into Arrow). NULL is an unquoted empty field, an empty string a
        quoted one, which polars reads back as null and "" respectively."""
        sql = con.compile(expr)
        buffer = io.BytesIO()
        raw = con.con
        with raw.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv, HEADER)") as copy:
            for chunk in copy:
                buffer.write(chunk)
        raw.commit()
        schema = {
            BUCKET: pl.String if query.samples else pl.Int64,
            ENTITY_ID: pl.String,
            **{d: pl.String for d in query.dimensions},
            # A decimal sum as its text (PostgreSQL's has no fixed precision): ``to_frame``
            # checks it into its 38 digits, naming a total past them.
            **{m: pl.String if layout.measure_types[m].is_decimal() else layout.fetched_type(m)
               for m in query.measures},
        }
        frame = pl.read_csv(buffer.getvalue(), schema=schema)
        if query.samples:
            parsed = pl.col(BUCKET).str.replace(r"\+00$", "").str.to_datetime(
                "%Y-%m-%d %H:%M:%S%.f", time_unit="us")
            zone = UTC if layout.timestamp_zone else None
            frame = frame.with_columns(parsed.dt.replace_time_zone(zone) if zone else parsed)
        return frame


def _arrow(expr: Any) -> pl.DataFrame:
    """DuckDB's rows of ``expr`` in DuckDB's own Arrow types. Not ibis' ``to_pyarrow``, which
    casts them to its types: it gives a decimal sum at least 2 decimals, and fails the 37- or
    38-digit total of a decimal of scale 0 or 1 in rescaling it."""
    import ibis

    con = ibis.get_backend(expr)
    return pl.from_arrow(con.con.sql(con.compile(expr)).to_arrow_table())


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


# --- the table's layout -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    timestamp: str
    entity_id: str
    entity_type: str
    timestamp_zone: str | None
    dimensions: tuple[str, ...]  # model names: entity_type, then the string columns
    measures: tuple[str, ...]
    measure_types: dict[str, pl.DataType]  # as polars types

    @classmethod
    def of(cls, schema: Any, mapping: ColumnMapping, where: str) -> _Layout:
        types = dict(schema.items())
        problems = []
        ts_type = types.get(mapping.timestamp)
        if ts_type is None or not ts_type.is_timestamp():
            problems.append(
                f"'{mapping.timestamp}' (timestamp) must be a timestamp column (found {ts_type})"
            )
        for role, name in ((ENTITY_ID, mapping.entity_id), (ENTITY_TYPE, mapping.entity_type)):
            if types.get(name) is None or not types[name].is_string():
                problems.append(f"'{name}' ({role}) must be a string column (found {types.get(name)})")
        roles = {mapping.timestamp, mapping.entity_id, mapping.entity_type}
        for name in mapping.measures or ():
            if types.get(name) is None or not types[name].is_numeric():
                problems.append(f"measure '{name}' must be a numeric column (found {types.get(name)})")
        for name in mapping.dimensions or ():
            if types.get(name) is None or not types[name].is_string():
                problems.append(f"dimension '{name}' must be a string column (found {types.get(name)})")
        others = [n for n in types if n not in roles]
        # Found rather than named, a decimal with no exact sum type is simply not a measure:
        # one such column must not make the rest of the table unusable.
        measures = mapping.measures or tuple(
            n for n in others
            if types[n].is_numeric() and not types[n].is_boolean() and not _unsummable_decimal(types[n])
        )
        problems += [
            f"measure '{name}' is a decimal of no fixed scale or over {DECIMAL_DIGITS} digits (found "
            f"{types[name]}): its sums are exact only in a fixed number of decimals; declare it "
            f"numeric(p, s) with p at most {DECIMAL_DIGITS}"
            for name in measures if name in types and _unsummable_decimal(types[name])
        ]
        if problems:
            raise MetricSourceError(
                f"metric source {where} does not follow the layout: " + "; ".join(problems)
            )
        dimensions = mapping.dimensions or tuple(n for n in others if types[n].is_string())
        return cls(
            timestamp=mapping.timestamp,
            entity_id=mapping.entity_id,
            entity_type=mapping.entity_type,
            timestamp_zone=ts_type.timezone,
            dimensions=(ENTITY_TYPE, *(d for d in dimensions if d != ENTITY_TYPE)),
            measures=tuple(measures),
            measure_types={m: _polars_type(types[m]) for m in measures},
        )

    def fetched_type(self, measure: str) -> pl.DataType:
        """The type a measure's sums leave the engine in: the adding type of ``sum_types``."""
        return sum_types(self.measure_types[measure])[0]

    def column(self, name: str) -> str:
        """The table column behind a model name."""
        return {TIMESTAMP: self.timestamp, ENTITY_ID: self.entity_id,
                ENTITY_TYPE: self.entity_type}.get(name, name)


# --- the query --------------------------------------------------------------------------------


def build_expression(table: Any, layout: _Layout, query: MetricQuery, wide: bool = False) -> Any:
    """Filter, bucket, group and sum ``query`` on ``table`` (bound or unbound); with ``wide``
    (DuckDB only), each decimal measure in ``_wide_sum``'s form."""
    import ibis

    ts = table[layout.timestamp]
    window = query.window
    predicate = (ts >= _literal(window.start, layout)) & (
        ts <= _literal(window.end, layout) if window.end_inclusive else ts < _literal(window.end, layout)
    )
    if query.entities is not None:
        predicate &= table[layout.entity_id].isin(list(query.entities))
    if query.entity_type is not None:
        predicate &= table[layout.entity_type] == query.entity_type
    filtered = table.filter(predicate)
    ts = filtered[layout.timestamp]
    if query.samples:
        bucket = ts
    else:
        bucket = bucket_seconds(ts.truncate("s").epoch_seconds(), query, ibis)
    keys = {
        BUCKET: bucket,
        ENTITY_ID: filtered[layout.entity_id],
        **{d: filtered[layout.column(d)] for d in query.dimensions},
    }
    sums = {}
    for m in query.measures:
        if wide and layout.measure_types[m].is_decimal():
            sums.update(_wide_sum(filtered[m], m))
        else:
            sums[m] = _sum(filtered[m], layout.measure_types[m])
    if not sums:  # only the keys are wanted (a request whose columns fetch no value)
        return filtered.select(**keys).distinct()
    return filtered.group_by(**keys).aggregate(**sums)


def _sum(column: Any, dtype: pl.DataType) -> Any:
    """The sum of a measure column by ``sum_types``: an integer total (exact in the engine)
    leaves as a 38-digit decimal, which ibis would otherwise read back as a 64-bit integer;
    a decimal one is exact as it is (DuckDB adds in a 38-digit decimal of the column's scale,
    read in its own Arrow type by ``_arrow``; PostgreSQL in a ``numeric`` of the column's
    scale, whose text ``to_frame`` checks into 38 digits); a float column is widened to its
    adding type before the engine adds it."""
    import ibis.expr.datatypes as dt

    types = sum_types(dtype)
    if types[0].is_integer():
        return column.sum().cast(dt.Decimal(DECIMAL_DIGITS, 0))
    if types[0].is_decimal():
        return column.sum()
    if dtype != types[0]:
        column = column.cast(_ibis_type(types[0]))
    return column.sum()


def _wide_sum(column: Any, name: str) -> dict[str, Any]:
    """The sum of decimal ``column`` as ``source.wide_sum``'s three columns, which no total
    overflows: the count of its values and the sums of the high and low 19 digits of their
    unscaled values, each with the value's sign. The digits are read from the decimal's text,
    which DuckDB writes with exactly the column's decimals: DuckDB casts a decimal to an
    integer, or to fewer decimals, by rounding, and divides decimals in floating point."""
    import ibis
    import ibis.expr.datatypes as dt

    text = column.cast("string")
    digits = ("0" * DECIMAL_DIGITS + text.replace("-", "").replace(".", "")).right(DECIMAL_DIGITS)

    def half(start: int) -> Any:
        value = digits.substr(start, HALF_DIGITS).cast(dt.Decimal(DECIMAL_DIGITS, 0))
        return ibis.ifelse(text.startswith("-"), -value, value).sum()

    count, high, low = wide_names(name)
    return {count: column.count(), high: half(0), low: half(HALF_DIGITS)}


def _unsummable_decimal(dtype: Any) -> bool:
    """A decimal without a fixed scale (PostgreSQL's plain ``numeric``, which ibis would read
    as 9 decimals) or wider than a sum can be: no exact sum of it has one type."""
    return dtype.is_decimal() and (
        dtype.scale is None or dtype.precision is None or dtype.precision > DECIMAL_DIGITS
    )


def _polars_type(dtype: Any) -> pl.DataType:
    from ibis.formats.polars import PolarsType

    return PolarsType.from_ibis(dtype)


def _ibis_type(dtype: pl.DataType) -> Any:
    from ibis.formats.polars import PolarsType

    return PolarsType.to_ibis(dtype)


def _literal(t: datetime, layout: _Layout) -> Any:
    import ibis

    utc = t.astimezone(timezone.utc)
    if layout.timestamp_zone is None:
        return ibis.literal(utc.replace(tzinfo=None), type="timestamp")
    return ibis.literal(utc, type="timestamp('UTC')")


def bucket_seconds(epoch: Any, query: MetricQuery, ibis: Any) -> Any:
    """The UTC epoch second of each row's bucket start, cut in ``query.time_zone``."""
    granularity = as_granularity(query.period)
    tz = ZoneInfo(query.time_zone) if query.time_zone != UTC else timezone.utc
    fixes = [] if query.time_zone == UTC else bucket_fixes(
        query.time_zone, granularity.every, not granularity.is_subdaily,
        query.window.start, query.window.end,
    )
    if granularity.unit in _MONTHS:
        starts = calendar_starts(query, granularity, tz, fixes)
        if len(starts) == 1:
            return ibis.literal(starts[0])
        return ibis.cases(*((epoch < b, a) for a, b in zip(starts, starts[1:])), else_=starts[-1])
    width = _UNIT_SECONDS[granularity.unit] * granularity.count
    origin = _ORIGIN.get(granularity.unit, 0)
    lo = int(query.window.start.timestamp()) - width - 2 * 86400
    hi = int(query.window.end.timestamp()) + 2 * 86400
    segments = offset_segments(tz, lo, hi)

    def local_start(offset: int) -> Any:
        return (epoch + offset - origin) // width * width + origin

    def to_utc(local: Any, index: int) -> Any:
        start, offset = segments[index]
        if index == 0:
            read = local - offset
        else:
            fallback = [
                (local < segments[j + 1][0] + max(o, segments[j + 1][1]), local - o)
                for j, (_, o) in enumerate(segments[:index])
            ]
            read = ibis.cases((local >= start + offset, local - offset), *fallback[:-1],
                              else_=fallback[-1][1])
        if not fixes:
            return read
        return ibis.cases(*(
            ((local >= _wall_second(f.first)) & (local < _wall_second(f.stop)),
             int(f.instant.timestamp()))
            for f in fixes
        ), else_=read)

    if len(segments) == 1:
        return to_utc(local_start(segments[0][1]), 0)
    branches = [
        (epoch < segments[i + 1][0], to_utc(local_start(segments[i][1]), i))
        for i in range(len(segments) - 1)
    ]
    last = len(segments) - 1
    return ibis.cases(*branches, else_=to_utc(local_start(segments[last][1]), last))


def _wall_second(wall: datetime) -> int:
    """The local wall time ``wall`` (naive) as the engine's local seconds, rounded up: the
    engine's bucket starts are whole seconds."""
    return math.ceil((wall - _WALL_EPOCH).total_seconds())


_WALL_EPOCH = datetime(1970, 1, 1)


def calendar_starts(
    query: MetricQuery, granularity: Granularity, tz: ZoneInfo | timezone, fixes: list[BucketFix]
) -> list[int]:
    """UTC epoch seconds of the month/quarter/year bucket starts (polars' rule: month counts
    from January 1970, floored to the bucket's multiple) from the one holding the window's
    start to the one holding its end; a start a clock change skips or repeats as ``fixes``
    reads it."""
    months = _MONTHS[granularity.unit] * granularity.count
    first = query.window.start.astimezone(tz)
    index = ((first.year - 1970) * 12 + first.month - 1) // months * months
    end = query.window.end.timestamp()
    starts = []
    while True:
        year, month0 = divmod(index, 12)
        wall = datetime(1970 + year, month0 + 1, 1)
        fixed = [f.instant for f in fixes if f.first <= wall < f.stop]
        local = fixed[0] if fixed else wall.replace(tzinfo=tz)
        second = int(local.astimezone(timezone.utc).timestamp())
        if starts and second > end:
            return starts
        starts.append(second)
        index += months


# --- back in polars ---------------------------------------------------------------------------


def to_frame(
    frame: pl.DataFrame, layout: _Layout, query: MetricQuery, wide: bool = False
) -> pl.DataFrame:
    """The engine's rows as the Parquet source's frame: same columns, dtypes and order. With
    ``wide``, the decimal measures come in ``_wide_sum``'s form, turned into their totals, or
    the Parquet source's error for the first total past 38 digits, by ``source.wide_totals``."""
    if query.samples:
        bucket = pl.col(BUCKET).cast(pl.Datetime("us", frame.schema[BUCKET].time_zone))
        bucket = bucket.dt.replace_time_zone(UTC) if layout.timestamp_zone is None else bucket
    else:
        bucket = pl.from_epoch(pl.col(BUCKET), "s").cast(pl.Datetime("us")).dt.replace_time_zone(UTC)
    bucket = bucket.dt.convert_time_zone(query.time_zone)
    decimals = {m: layout.measure_types[m].scale for m in query.measures
                if wide and layout.measure_types[m].is_decimal()}
    summed = [m for m in query.measures if m not in decimals]
    text = [m for m in summed if frame.schema[m] == pl.String]  # decimals' (``_copy_out``)
    frame = frame.select(
        bucket.alias(BUCKET),
        pl.col(ENTITY_ID).cast(pl.String),
        *(pl.col(d).cast(pl.String) for d in query.dimensions),
        *(pl.col(m) if m in text else pl.col(m).cast(layout.fetched_type(m)) for m in summed),
        *(pl.col(c).cast(pl.Int128) for m in decimals for c in wide_names(m)),
    ).sort(query.key_columns, nulls_last=True)
    names = measure_names(query)
    if decimals:
        frame = wide_totals(frame, decimals, names, query.key_columns).select(
            *query.key_columns, *query.measures)
    return exported(frame, names, query.key_columns, {m: layout.fetched_type(m) for m in text})


def sql_source(settings: Any) -> SqlMetricSource:
    """A source from ``MetricStoreSettings`` (passed in; this module reads no environment)."""
    return SqlMetricSource(
        settings.source,
        settings.table,
        ColumnMapping.parse(settings.columns, settings.measures, settings.dimensions),
        statement_timeout_seconds=settings.statement_timeout,
        retries=settings.retries,
    )
