"""The export request: the CSV-generator body (``csvFormat`` + ``metricRequests``) as pydantic models.

Field names are camelCase on the wire and snake_case in Python. Unknown fields are
refused, so a misspelt ``sortby`` is reported instead of silently ignored. These models check
shape and local rules only; rules that look across the request or at the metric store live in
``validation``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Annotated, Any

from dateutil.relativedelta import relativedelta
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from export_pipeline.timeline.periods import (
    ISO_DURATION,
    AggregationPeriod,
    Granularity,
    canonical_zone,
    parse_granularity,
)

RANGE_MESSAGE = "needs a range: start and end, from and to, or either bound with a period"
EARLIEST_INSTANT = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST_INSTANT = datetime(9999, 1, 1, tzinfo=timezone.utc)
"""Instants a range may reach (the latest excluded): a year of margin below Python's and the
calendar's end, so bucket, time-zone and window arithmetic on any of them stays in range."""
SUPPORTED_INSTANTS = f"{EARLIEST_INSTANT:%Y-%m-%dT%H:%M:%SZ} up to {LATEST_INSTANT:%Y-%m-%dT%H:%M:%SZ}"
MAX_HEADING_LENGTH = 256
MAX_ID_LENGTH = 256


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True,
        use_attribute_docstrings=True,
    )


def _sort_index_hint(value: Any) -> Any:
    if isinstance(value, dict):
        raise ValueError(
            "sortBy takes column indices (integers into csvFormat.columns), not objects; "
            "e.g. [0, 1]"
        )
    return value


NonEmptyStr = Annotated[str, Field(min_length=1)]


_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode's category Cc


def has_control_characters(value: str) -> bool:
    return _CONTROL_CHARACTER.search(value) is not None


def _plain_text(value: str) -> str:
    """No control character (NUL, a tab, a line break, an escape…): they end strings in C
    libraries, split log lines and CSV records, and are never part of a name."""
    if has_control_characters(value):
        raise ValueError("must not contain control characters (NUL, tab, line break, escape…)")
    return value


Heading = Annotated[
    str, Field(min_length=1, max_length=MAX_HEADING_LENGTH), AfterValidator(_plain_text)
]
Identifier = Annotated[
    str, Field(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(_plain_text)
]
Label = Annotated[str, Field(max_length=MAX_HEADING_LENGTH), AfterValidator(_plain_text)]
SortIndex = Annotated[StrictInt, BeforeValidator(_sort_index_hint)]

FILENAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class DecimationFunction(str, Enum):
    """How the samples of one bucket become its value (the ``dsf`` of decimation)."""

    avg = "avg"
    max = "max"
    min = "min"
    sum = "sum"
    stddev = "stddev"
    variance = "variance"


class Transform(str, Enum):
    delta = "delta"


class FileFormat(str, Enum):
    csv = "csv"
    xlsx = "xlsx"
    pdf = "pdf"


class Layout(str, Enum):
    """``long``: a row per bucket and row keys. ``wide``: a row per bucket, a column per row
    key and metric column. ``crosstab``: a row per row key (and metric), a column per bucket."""

    long = "long"
    wide = "wide"
    crosstab = "crosstab"


class Template(str, Enum):
    """``expanded`` adds a column per requested facet, so facets break rows out."""

    tabular = "tabular"
    expanded = "expanded"


class CsvProfile(str, Enum):
    """``rfc4180``: the plain file. ``excel``: a UTF-8 BOM so Excel reads UTF-8, CRLF."""

    rfc4180 = "rfc4180"
    excel = "excel"


def _check_zone(value: str) -> str:
    return canonical_zone(value)


CSV_DELIMITERS = "\t!#$%&'()*,/;<=>?@[\\]^_`{|}~"
"""The delimiters a CSV may use: a tab or ASCII punctuation that no number or date contains
(not ``.``, ``-``, ``+``, ``:``, a letter such as ``e``, or a digit), so an unquoted number
or date is never split, and not the quote character or a space (which readers trim)."""


def csv_delimiter_refusal(value: str) -> str | None:
    """Why ``value`` cannot be a CSV delimiter, or None."""
    if len(value) == 1 and value in CSV_DELIMITERS:
        return None
    return (
        "must be a tab or one ASCII punctuation character that no number or date contains "
        "(e.g. ',', ';', '|'); not a letter, digit, space, quote, '.', '-', '+' or ':'"
    )


def _check_delimiter(value: str) -> str:
    refusal = csv_delimiter_refusal(value)
    if refusal:
        raise ValueError(refusal)
    return value


def _check_ds(value: str) -> str:
    parse_granularity(value)
    return value


class OutputOptions(_Model):
    """The file's format and layout (the ``format`` object; a string is ``extension``)."""

    extension: Annotated[FileFormat, BeforeValidator(_lower, json_schema_input_type=str)] = FileFormat.csv
    """The file type: csv, xlsx or pdf (any case)."""
    filename: Annotated[str, Field(pattern=FILENAME_PATTERN)] | None = None
    """The file's name without extension: letters, digits, '-' and '_'."""
    timezone: Annotated[str, AfterValidator(_check_zone)] = "UTC"
    """The IANA timezone buckets are cut and dates written in, e.g. Europe/Berlin."""
    template: Template = Template.tabular
    """tabular, or expanded: a column per requested facet."""
    output_format: Layout = Layout.long
    """The layout: long (a row per bucket), wide or crosstab (a column per bucket)."""
    csv_delimiter: Annotated[str, AfterValidator(_check_delimiter)] = ","
    """One character between CSV fields, e.g. ',', ';' or a tab."""
    bom: StrictBool | None = None
    """Start the CSV with a UTF-8 byte order mark; unset: as the profile says."""
    profile: Annotated[CsvProfile, BeforeValidator(_lower, json_schema_input_type=str)] = CsvProfile.rfc4180
    """rfc4180 (the plain file) or excel (a UTF-8 BOM and CRLF, for Excel)."""
    formula_guard: StrictBool = True
    """Neutralise cells a spreadsheet would run as a formula (=, +, -, @)."""
    title: Annotated[str, Field(max_length=200), AfterValidator(_plain_text)] | None = None
    """The PDF report's title."""
    compare_previous: StrictBool = False
    """Also fetch the period before the range and show the change (PDF report)."""

    @property
    def with_bom(self) -> bool:
        return self.bom if self.bom is not None else self.profile is CsvProfile.excel


def _format_shorthand(value: Any) -> Any:
    return {"extension": value} if isinstance(value, str) else value


class Decimation(_Model):
    """Seed 004 decimation: buckets of ``ds`` (``15m``, ``PT1H``…), each the ``dsf`` of its samples."""

    ds: Annotated[str, AfterValidator(_check_ds)]
    """The bucket width: 15m, 1h, 1d, or an ISO 8601 duration such as PT1H."""
    dsf: Annotated[DecimationFunction, BeforeValidator(_lower, json_schema_input_type=str)] = DecimationFunction.sum
    """How a bucket's samples become its value: avg, max, min, sum, stddev or variance."""

    @property
    def granularity(self) -> Granularity:
        return parse_granularity(self.ds)


def parse_iso_duration(text: str) -> relativedelta:
    """The duration ``text`` names; refused when it is zero or longer than the supported
    instants span, so adding it to a bound can neither overflow nor make an empty range."""
    match = ISO_DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P30D or P1Y6M4DT12H30M5S")
    years, months, weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    longest = (years * 366 + months * 31 + weeks * 7 + days) * 86_400 + hours * 3_600 + minutes * 60 + seconds
    if longest == 0:
        raise ValueError(f"{text!r} is empty: a period is longer than zero")
    if longest > (LATEST_INSTANT - EARLIEST_INSTANT).total_seconds():
        raise ValueError(f"{text!r} is longer than the supported instants span ({SUPPORTED_INSTANTS})")
    return relativedelta(
        years=years, months=months, weeks=weeks, days=days, hours=hours, minutes=minutes,
        seconds=seconds,
    )


def _check_period(value: str) -> str:
    parse_iso_duration(value)
    return value


UnixSeconds = Annotated[int | float, Field(ge=0, le=253402300799)]


class Column(_Model):
    """One CSV column: a dimension (no ``metricId``) or a value bound to a metric request."""

    heading: Heading
    """The column's heading in the file."""
    metric_id: Identifier | None = None
    """The metricRequests[].metricId this value column reads; leave it out for a dimension."""
    fetch_value: NonEmptyStr | None = None
    """The measure the value column shows, e.g. entries."""
    field: NonEmptyStr | None = None
    """The dimension a dimension column shows (date, entity, a facet); default: its heading."""
    dsf: Annotated[DecimationFunction, BeforeValidator(_lower, json_schema_input_type=str)] | None = None
    """This column's decimation function, overriding its metric request's."""
    filter: dict[NonEmptyStr, NonEmptyStr | Annotated[list[NonEmptyStr], Field(min_length=1)]] | None = None
    """Facet values this column keeps: a facet name to a value or a list of values."""

    @property
    def is_metric(self) -> bool:
        return self.metric_id is not None

    @property
    def dimension_name(self) -> str:
        """What a dimension column shows: its ``field``, else its heading lower-cased."""
        return self.field if self.field is not None else self.heading.strip().lower()

    def filter_values(self) -> dict[str, tuple[str, ...]]:
        return {
            k: (v,) if isinstance(v, str) else tuple(v) for k, v in (self.filter or {}).items()
        }


class CsvFormat(_Model):
    columns: Annotated[list[Column], Field(min_length=1)]
    """The file's columns, in order: dimensions and metric values."""
    sort_by: list[SortIndex]
    """Indices into columns to sort the rows by, e.g. [0]."""
    row_filters: Annotated[list[NonEmptyStr], Field(min_length=1)]
    """What makes a row: entity, and any facets that break rows out."""


class MetricRequest(_Model):
    """A standard metric body plus two labelling fields (``metricId``, ``name``).

    The range is ``start``/``end`` (ISO instants), or ``from``/``to`` (Unix
    seconds), or either bound with a ``period`` (ISO 8601 duration) for the other; a ``period``
    alone ends now. Both bounds are inclusive; a bound derived from a ``period`` stops one
    microsecond short, so ``P1D`` from a midnight is exactly that day.
    """

    metric_id: Identifier | None = None
    """This request's id, which csvFormat.columns[].metricId refers to."""
    name: Label | None = None
    """A label for people; not used by the export."""
    start: AwareDatetime | None = None
    """The first instant (inclusive), ISO 8601 with an offset, e.g. 2024-04-01T00:00:00Z."""
    end: AwareDatetime | None = None
    """The last instant (inclusive), ISO 8601 with an offset."""
    from_: Annotated[UnixSeconds | None, Field(alias="from")] = None
    """The first instant as Unix seconds, in place of start."""
    to: UnixSeconds | None = None
    """The last instant as Unix seconds, in place of end."""
    period: Annotated[str, AfterValidator(_check_period)] | None = None
    """An ISO 8601 duration (P30D) for the bound not given; alone, the period ending now."""
    decimation: Decimation | None = None
    """Buckets of ds, each the dsf of its samples; overrides aggregationPeriod."""
    transform: Transform | None = None
    """delta: each bucket minus the one before."""
    entities: Annotated[list[Identifier], Field(min_length=1)] | None = None
    """The entity ids to export; leave it out for every entity of entityType."""
    entity_type: Identifier | None = None
    """The kind of entity, e.g. location."""
    facets: list[NonEmptyStr] = []
    """Facets to break values out by, e.g. segments."""
    aggregation_period: AggregationPeriod = AggregationPeriod.day
    """The bucket width: minute, hour, day, week, month, quarter or year."""

    @field_validator("start", "end", mode="before")
    @classmethod
    def _instant_only(cls, value: Any) -> Any:
        if value is None:  # absent: the range rules say what is missing
            return None
        if not isinstance(value, str) or "T" not in value.upper():
            raise ValueError(
                "must be an ISO 8601 instant with a time and an offset, "
                "e.g. 2024-04-01T00:00:00Z"
            )
        return value

    @field_validator("start", "end", mode="after")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        utc = in_utc(value)
        if utc is None or not EARLIEST_INSTANT <= utc < LATEST_INSTANT:
            raise ValueError(f"is outside the supported instants, {SUPPORTED_INSTANTS}")
        return utc

    @model_validator(mode="after")
    def _resolve_range(self) -> "MetricRequest":
        """Fill ``start``/``end`` from ``from``/``to``/``period`` (checked in ``validation``)."""
        start, end = self.start, self.end
        if start is None and self.from_ is not None:
            start = datetime.fromtimestamp(self.from_, timezone.utc)
        if end is None and self.to is not None:
            end = datetime.fromtimestamp(self.to, timezone.utc)
        if self.period is not None:
            start, end = resolve_period(start, end, self.period)
        if start is None or end is None:
            raise ValueError(RANGE_MESSAGE)
        if not EARLIEST_INSTANT <= start <= end < LATEST_INSTANT:
            raise ValueError(f"{RANGE_MESSAGE}, inside the supported instants")  # reported per field
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        return self

    @property
    def granularity(self) -> Granularity:
        """The bucket width: the decimation's ``ds`` when given, else ``aggregationPeriod``."""
        if self.decimation is not None:
            return self.decimation.granularity
        return Granularity(self.aggregation_period)

    def decimation_function(self, column: "Column") -> DecimationFunction:
        if column.dsf is not None:
            return column.dsf
        return self.decimation.dsf if self.decimation is not None else DecimationFunction.sum


def in_utc(value: datetime) -> datetime | None:
    """``value`` in UTC, or None when that is outside the calendar
    (``0001-01-01T00:00:00+01:00`` is in year 0 in UTC)."""
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        return None


def resolve_period(
    start: datetime | None, end: datetime | None, period: str
) -> tuple[datetime | None, datetime | None]:
    """Both bounds from one bound and ``period`` (alone, it ends now); a bound past the
    supported instants comes back as None, never as an OverflowError."""
    length = parse_iso_duration(period)
    tick = timedelta(microseconds=1)
    try:
        if start is not None and end is None:
            end = start + length - tick
        elif start is None:
            end = end if end is not None else datetime.now(timezone.utc).replace(microsecond=0)
            start = end - length + tick
    except (OverflowError, ValueError):  # past year 9999 or before year 1
        return (None, end) if start is None else (start, None)
    return start, end


class DestinationType(str, Enum):
    """Seed 003's destination types (any case on the wire), plus ``ftps`` (FTP over explicit
    TLS), which the destinations API does not name."""

    aws = "aws"
    s3 = "s3"
    sftp = "sftp"
    ftp = "ftp"
    ftps = "ftps"
    gcs = "gcs"


DEFAULT_PORTS = {DestinationType.sftp: 22, DestinationType.ftp: 21, DestinationType.ftps: 21}
"""The port a destination connects to when its request gives none."""


def _port(value: Any) -> Any:
    """Seed 003 sends the port as a string (``"21"``); a number is fine too. Only ASCII
    digits: Python's ``int`` also reads ``"٢٢"`` and ``" 22 "``, which no server config
    would show as the port it connects to."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,5}", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError("must be a port number (1 to 65535)")
    return value


class DestinationSpec(BaseModel):
    """Where to deliver the file, with the destinations API's field names as they are on the wire.

    Credentials are ``SecretStr`` so no repr or log line shows them; in run config they are
    sealed (see ``destinations.sealing``), which this model does not need to know.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )

    type: Annotated[DestinationType, BeforeValidator(_lower, json_schema_input_type=str)] = DestinationType.aws
    """aws (the export bucket), s3, sftp, ftp, ftps or gcs (any case)."""
    server: NonEmptyStr | None = None
    """The SFTP/FTP host name."""
    port: Annotated[int, BeforeValidator(_port, json_schema_input_type=int | str)] | None = None
    """The SFTP/FTP port, a number or a string of digits."""
    username: NonEmptyStr | None = None
    """The SFTP/FTP user."""
    password: SecretStr | None = None
    """The SFTP/FTP password, sealed (export-pipeline seal): run config keeps it as written."""
    saved_key: NonEmptyStr | None = Field(default=None, alias="savedKey")
    """The name of an SSH key the operator keeps on the server side, in place of a password."""
    aws_access_key_id: SecretStr | None = None
    """The customer bucket's access key id, sealed."""
    aws_secret_access_key: SecretStr | None = None
    """The customer bucket's secret key, sealed."""
    aws_bucket: NonEmptyStr | None = None
    """The customer's S3 bucket."""
    aws_region: NonEmptyStr | None = None
    """The customer bucket's region."""
    gcs_bucket: NonEmptyStr | None = None
    """The customer's Google Cloud Storage bucket."""
    path: str | None = None
    """The folder (or key prefix) the file goes to."""


SECRET_FIELDS = ("password", "aws_access_key_id", "aws_secret_access_key")
"""A destination's credentials: sealed in run config, never shown, masked in messages."""


class ExportRequest(_Model):
    """The request body: what to fetch, how to lay it out, and where to deliver it."""

    csv_format: CsvFormat
    """The file's columns, sort order and what makes a row."""
    metric_requests: Annotated[list[MetricRequest], Field(min_length=1)]
    """What to fetch: metrics, entities, range and buckets, one item per metric."""
    format: Annotated[
        OutputOptions, BeforeValidator(_format_shorthand, json_schema_input_type=str | OutputOptions)
    ] = OutputOptions()
    """The file type (csv, xlsx, pdf) alone, or an object with layout, timezone and more."""

    @property
    def timezone(self) -> str:
        return self.format.timezone

    def needs_samples(self, index: int) -> bool:
        """Whether metric request ``index`` is fetched as samples (a non-sum decimation)."""
        metric_request = self.metric_requests[index]
        return any(
            metric_request.decimation_function(c) is not DecimationFunction.sum
            for _, c in self.columns_of(metric_request.metric_id)
        )

    destination: DestinationSpec | None = None
    """Where to deliver the file besides the export bucket."""
    destinations: Annotated[list[DestinationSpec], Field(min_length=1)] | None = None
    """Several destinations, in place of destination."""

    def deliveries(self) -> list[DestinationSpec]:
        """Destinations beyond the export bucket (type ``aws`` is the bucket itself)."""
        specs = [self.destination] if self.destination else list(self.destinations or [])
        return [d for d in specs if d.type is not DestinationType.aws]

    def columns_of(self, metric_id: str | None) -> list[tuple[int, Column]]:
        return [
            (i, c) for i, c in enumerate(self.csv_format.columns)
            if metric_id is not None and c.metric_id == metric_id
        ]


def expanded_facets(request: ExportRequest) -> list[str]:
    """The facets the ``expanded`` template breaks out as columns (not already row keys)."""
    if request.format.template is not Template.expanded:
        return []
    row = set(request.csv_format.row_filters)
    facets = [f for m in request.metric_requests for f in m.facets if f not in row]
    return list(dict.fromkeys(facets))
