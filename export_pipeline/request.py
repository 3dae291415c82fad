"""The export request: the body of seed 000 (``csvFormat`` + ``metricRequests``) as pydantic models.

Field names are the seed's camelCase on the wire and snake_case in Python. Unknown fields are
refused, so a misspelt ``sortby`` is reported instead of silently ignored. These models check
shape and local rules only; rules that look across the request or at the metric store live in
``validation``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictInt,
    field_validator,
)
from pydantic.alias_generators import to_camel

from export_pipeline.periods import AggregationPeriod

REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ROUTE = "external-service/csv-generator"


class Problem(NamedTuple):
    """One thing wrong with a request: where (a JSON path into the submitted document) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidRequest(ValueError):
    """A request that must not run; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _sort_index_hint(value: Any) -> Any:
    if isinstance(value, dict):
        raise ValueError(
            "sortBy takes column indices (integers into csvFormat.columns), not objects; "
            "e.g. [0, 1]"
        )
    return value


NonEmptyStr = Annotated[str, Field(min_length=1)]
SortIndex = Annotated[StrictInt, BeforeValidator(_sort_index_hint)]


class Column(_Model):
    """One CSV column: a dimension (no ``metricId``) or a value bound to a metric request."""

    heading: str
    metric_id: NonEmptyStr | None = None
    fetch_value: NonEmptyStr | None = None
    field: NonEmptyStr | None = None
    filter: dict[NonEmptyStr, NonEmptyStr | Annotated[list[NonEmptyStr], Field(min_length=1)]] | None = None

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
    sort_by: list[SortIndex]
    row_filters: Annotated[list[NonEmptyStr], Field(min_length=1)]


class MetricRequest(_Model):
    """A standard metric body plus the two labelling fields of seed 000."""

    metric_id: NonEmptyStr | None = None
    name: str | None = None
    start: AwareDatetime
    end: AwareDatetime
    entities: Annotated[list[NonEmptyStr], Field(min_length=1)] | None = None
    entity_type: NonEmptyStr | None = None
    facets: list[NonEmptyStr] = []
    aggregation_period: AggregationPeriod = AggregationPeriod.day

    @field_validator("start", "end", mode="before")
    @classmethod
    def _instant_only(cls, value: Any) -> Any:
        if not isinstance(value, str) or "T" not in value.upper():
            raise ValueError(
                "must be an ISO 8601 instant with a time and an offset, "
                "e.g. 2024-04-01T00:00:00Z"
            )
        return value

    @field_validator("start", "end", mode="after")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(timezone.utc)


class DestinationType(str, Enum):
    """Seed 003's destination types (any case on the wire), plus ``ftps`` (FTP over explicit
    TLS), which the seed does not name."""

    aws = "aws"
    s3 = "s3"
    sftp = "sftp"
    ftp = "ftp"
    ftps = "ftps"
    gcs = "gcs"


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _port(value: Any) -> Any:
    """Seed 003 sends the port as a string (``"21"``); a number is fine too."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError("must be a port number (1 to 65535)")
    return value


class DestinationSpec(BaseModel):
    """Where to deliver the file, with seed 003's field names as they are on the wire.

    Credentials are ``SecretStr`` so no repr or log line shows them; in run config they are
    sealed (see ``destinations.sealing``), which this model does not need to know.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Annotated[DestinationType, BeforeValidator(_lower)] = DestinationType.aws
    server: NonEmptyStr | None = None
    port: Annotated[int, BeforeValidator(_port)] | None = None
    username: NonEmptyStr | None = None
    password: SecretStr | None = None
    saved_key: NonEmptyStr | None = Field(default=None, alias="savedKey")
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_bucket: NonEmptyStr | None = None
    aws_region: NonEmptyStr | None = None
    gcs_bucket: NonEmptyStr | None = None
    path: str | None = None


class ExportRequest(_Model):
    """The request body: what to fetch, how to lay it out, and where to deliver it."""

    csv_format: CsvFormat
    metric_requests: Annotated[list[MetricRequest], Field(min_length=1)]
    destination: DestinationSpec | None = None
    destinations: Annotated[list[DestinationSpec], Field(min_length=1)] | None = None

    def deliveries(self) -> list[DestinationSpec]:
        """Destinations beyond the export bucket (type ``aws`` is the bucket itself)."""
        specs = [self.destination] if self.destination else list(self.destinations or [])
        return [d for d in specs if d.type is not DestinationType.aws]

    def columns_of(self, metric_id: str | None) -> list[tuple[int, Column]]:
        return [
            (i, c) for i, c in enumerate(self.csv_format.columns)
            if metric_id is not None and c.metric_id == metric_id
        ]


def load_document(text: str, source: str = "<request>") -> Any:
    """Parse a request document: JSON, or YAML (a superset, as the Launchpad takes it)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as json_error:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            raise InvalidRequest(
                [Problem("", f"{source} is neither JSON nor YAML: {json_error}")]
            ) from None


def read_document(path: str) -> Any:
    """Read a request file; ``-`` reads standard input."""
    if path == "-":
        import sys

        return load_document(sys.stdin.read(), "standard input")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidRequest([Problem("", f"cannot read {path}: {error.strerror}")]) from None
    return load_document(text, path)
