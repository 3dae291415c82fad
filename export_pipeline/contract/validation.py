"""Validate a submitted request document: every problem at once, each with its JSON path.

Three passes run over the document, and all of them always run, so a user fixes a request in
one round trip: the shape (pydantic), the rules across fields (column bindings, sort indices,
unique ids) and the names checked against the metric store's schema. The rules read the raw
document defensively, so a type error in one place does not hide a wrong name in another.
A request that parses is also costed (``planning.cost``) and refused above the limits.
Every entry point (CLI, Launchpad, sensors, saved exports) goes through ``validate_document``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from export_pipeline.destinations.paths import path_problems
from export_pipeline.contract.cost import cost_problems
from export_pipeline.settings import LimitSettings, get_limits
from export_pipeline.store.source import StoreSchema
from export_pipeline.timeline.periods import AggregationPeriod, Granularity, parse_granularity
from export_pipeline.contract.models import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    MAX_HEADING_LENGTH,
    RANGE_MESSAGE,
    SUPPORTED_INSTANTS,
    REQUEST_ID_PATTERN,
    ROUTE,
    ExportRequest,
    InvalidRequest,
    Problem,
    has_control_characters,
    in_utc,
    resolve_period,
)

DATE_DIMENSION = "date"


@dataclass(frozen=True)
class ValidatedRequest:
    request: ExportRequest
    request_id: str | None


def validate_document(
    document: Any, schema: StoreSchema | None = None, limits: LimitSettings | None = None
) -> ValidatedRequest:
    """The request in ``document`` (a seed-000 body or its envelope), or ``InvalidRequest``.
    ``limits`` bound what it may cost (the configured ``EXPORT_MAX_*`` when not given)."""
    body, prefix, request_id, problems = _unwrap(document)
    request = None
    if body is not None:
        try:
            request = ExportRequest.model_validate(body)
        except ValidationError as error:
            problems += [
                _from_pydantic(e, prefix) for e in error.errors()
                if not str(e.get("ctx", {}).get("error", "")).startswith(RANGE_MESSAGE)
            ]  # a missing range is reported per field by the cross-field pass
        problems += _cross_field_problems(body, prefix)
        problems += _destination_problems(body, prefix)
        if schema is not None:
            problems += _schema_problems(body, schema, prefix)
        if request is not None:
            problems += cost_problems(request, limits or get_limits(), prefix)
    problems = list(dict.fromkeys(problems))
    if problems or request is None:
        raise InvalidRequest(problems)
    return ValidatedRequest(request=request, request_id=request_id)


def _unwrap(document: Any) -> tuple[dict | None, str, str | None, list[Problem]]:
    """Find the body; the envelope ``{"action", "data": {"id", "route", "body"}}`` is optional."""
    if not isinstance(document, dict):
        return None, "", None, [Problem("", f"a request is a JSON object, not {_kind(document)}")]
    if "data" not in document or "csvFormat" in document:
        return document, "", None, []
    problems = []
    data = document["data"]
    if not isinstance(data, dict):
        return None, "", None, [Problem("data", f"must be an object, not {_kind(data)}")]
    for key in sorted(set(document) - {"action", "data"}):
        problems.append(Problem(key, "unknown field in the request envelope"))
    for key in sorted(set(data) - {"id", "route", "body"}):
        problems.append(Problem(f"data.{key}", "unknown field in the request envelope"))
    request_id = data.get("id")
    if request_id is not None and (
        not isinstance(request_id, str) or not re.match(REQUEST_ID_PATTERN, request_id)
    ):
        problems.append(Problem(
            "data.id",
            "must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
        request_id = None
    route = data.get("route")
    if route is not None and route != ROUTE:
        problems.append(Problem("data.route", f"this service answers {ROUTE!r}, not {route!r}"))
    body = data.get("body")
    if not isinstance(body, dict):
        problems.append(Problem("data.body", "required: the request body (csvFormat + metricRequests)"))
        body = None
    return body, "data.body.", request_id, problems


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


_PYDANTIC_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "too_short": "must not be empty",
}


def _from_pydantic(error: dict, prefix: str) -> Problem:
    loc = error["loc"]
    path = prefix + _json_path(loc)
    message = _PYDANTIC_MESSAGES.get(error["type"], error["msg"])
    if error["type"] == "enum":
        message = f"{error['input']!r} is not one of {error['ctx']['expected']}"
    elif error["type"] == "value_error":
        message = str(error["ctx"]["error"])
    elif error["type"] == "int_type":
        message = "must be an integer"
    elif error["type"] == "string_pattern_mismatch" and loc[-1] == "filename":
        message = (
            "may hold only letters, digits, '-' and '_' (1 to 100, starting with a letter or "
            "digit); the extension is added from the format"
        )
    elif any(_is_type_tag(part) for part in loc):
        # A union (a filter value) reports one error per member; say once what it takes.
        message = "must be a string or a non-empty list of strings"
    return Problem(path, message)


def _is_type_tag(part: object) -> bool:
    """pydantic puts the union member's type (``list[constrained-str]``) into error paths."""
    return isinstance(part, str) and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part)


def _json_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_type_tag(part):
            out += f".{part}" if out else str(part)
    return out


def _items(value: Any) -> Iterator[tuple[int, dict]]:
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict):
                yield i, item


def _strings(value: Any) -> Iterator[tuple[int, str]]:
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield i, item


_INSTANT = TypeAdapter(AwareDatetime)


def _instant(value: Any) -> datetime | None:
    """The instant pydantic would read, or None (the shape pass reports why)."""
    if not isinstance(value, str):
        return None
    try:
        return in_utc(_INSTANT.validate_python(value))
    except ValidationError:
        return None


def _cross_field_problems(body: dict, prefix: str) -> list[Problem]:
    problems: list[Problem] = []
    csv_format = body.get("csvFormat") if isinstance(body.get("csvFormat"), dict) else {}
    columns = csv_format.get("columns")
    row_filters = [f for _, f in _strings(csv_format.get("rowFilters"))]
    p = f"{prefix}csvFormat"

    metric_ids: dict[str, int] = {}
    for i, metric_request in _items(body.get("metricRequests")):
        metric_id = metric_request.get("metricId")
        if not isinstance(metric_id, str):
            continue
        if metric_id in metric_ids:
            problems.append(Problem(
                f"{prefix}metricRequests[{i}].metricId",
                f"{metric_id!r} is already used by metricRequests[{metric_ids[metric_id]}]",
            ))
        else:
            metric_ids[metric_id] = i

    for i, metric_request in _items(body.get("metricRequests")):
        problems += _range_problems(metric_request, f"{prefix}metricRequests[{i}]")
        if "decimation" in metric_request and "aggregationPeriod" in metric_request:
            problems.append(Problem(
                f"{prefix}metricRequests[{i}].aggregationPeriod",
                "give decimation (its ds sets the buckets) or aggregationPeriod, not both",
            ))

    periods = [(i, _bucket_width(m)) for i, m in _items(body.get("metricRequests"))]
    for i, (field_name, period, _) in periods[1:]:
        _, first, first_label = periods[0][1]
        if period is not None and first is not None and period != first:
            problems.append(Problem(
                f"{prefix}metricRequests[{i}].{field_name}",
                f"must match metricRequests[{periods[0][0]}] ({first_label!r}): "
                "every row is one bucket of one period",
            ))

    problems += _format_problems(body, prefix)

    listed: set[str] = set()  # a set: a list's index() would be quadratic in a huge request
    for i, f in _strings(csv_format.get("rowFilters")):
        if f == "date":
            problems.append(Problem(
                f"{p}.rowFilters[{i}]", "'date' is always a row dimension; list only the others"
            ))
        elif f in listed:
            problems.append(Problem(f"{p}.rowFilters[{i}]", f"{f!r} is listed twice"))
        listed.add(f)

    headings: dict[str, int] = {}
    for i, column in _items(columns):
        cp = f"{p}.columns[{i}]"
        heading = column.get("heading")
        if isinstance(heading, str):
            if heading in headings:
                problems.append(Problem(
                    f"{cp}.heading", f"{heading!r} is already the heading of columns[{headings[heading]}]"
                ))
            headings.setdefault(heading, i)
        metric_id = column.get("metricId")
        if metric_id is None:
            for key in ("fetchValue", "filter", "dsf"):
                if key in column:
                    problems.append(Problem(f"{cp}.{key}", "only a column with a metricId takes one"))
            name_key = "field" if "field" in column else "heading"
            name = column.get(name_key)
            if isinstance(name, str) and 0 < len(name) <= MAX_HEADING_LENGTH and not has_control_characters(name):
                name = name if name_key == "field" else name.strip().lower()
                if name != DATE_DIMENSION and name not in listed:
                    known = ", ".join(repr(d) for d in dict.fromkeys((DATE_DIMENSION, *row_filters)))
                    problems.append(Problem(
                        f"{cp}.{name_key}",
                        f"a column without metricId shows a row dimension, and {name!r} is none "
                        f"of them ({known}); bind it to a metric request with metricId, or list "
                        f"the dimension in csvFormat.rowFilters",
                    ))
        elif isinstance(metric_id, str):
            if metric_id not in metric_ids:
                known = ", ".join(repr(m) for m in metric_ids) or "none"
                problems.append(Problem(
                    f"{cp}.metricId",
                    f"{metric_id!r} matches no metricRequests[].metricId (known: {known})",
                ))
            if "fetchValue" not in column:
                problems.append(Problem(
                    f"{cp}.fetchValue", "required when metricId is set: the measure to export"
                ))

    column_count = len(columns) if isinstance(columns, list) else None
    seen: dict[int, int] = {}
    sort_by = csv_format.get("sortBy")
    if isinstance(sort_by, list):
        for i, index in enumerate(sort_by):
            if not isinstance(index, int) or isinstance(index, bool):
                continue
            if column_count is not None and not 0 <= index < column_count:
                problems.append(Problem(
                    f"{p}.sortBy[{i}]", f"index {index} is out of range ({column_count} columns)"
                ))
            elif index in seen:
                problems.append(Problem(
                    f"{p}.sortBy[{i}]", f"index {index} is already listed at sortBy[{seen[index]}]"
                ))
            seen.setdefault(index, i)
    return problems


def _bucket_width(metric_request: dict) -> tuple[str, str | None, Any]:
    """The field that sets a metric request's buckets, the width it names (comparable), and
    the value as the user wrote it."""
    decimation = metric_request.get("decimation")
    if isinstance(decimation, dict) and isinstance(decimation.get("ds"), str):
        try:
            return "decimation.ds", parse_granularity(decimation["ds"]).every, decimation["ds"]
        except ValueError:
            return "decimation.ds", None, decimation["ds"]
    period = metric_request.get("aggregationPeriod", "day")
    try:
        return "aggregationPeriod", Granularity(AggregationPeriod(period)).every, period
    except (ValueError, TypeError):
        return "aggregationPeriod", None, period


def _range_problems(metric_request: dict, path: str) -> list[Problem]:
    """start/from, end/to and period: which combinations make one range."""
    problems = []
    given = {k: k in metric_request and metric_request[k] is not None
             for k in ("start", "end", "from", "to", "period")}
    for a, b in (("start", "from"), ("end", "to")):
        if given[a] and given[b]:
            problems.append(Problem(f"{path}.{b}", f"give {a} or {b}, not both"))
    has_start, has_end = given["start"] or given["from"], given["end"] or given["to"]
    if given["period"] and has_start and has_end:
        problems.append(Problem(
            f"{path}.period", "a period sets one bound from the other: give it with a start or an end, not both"
        ))
    if not given["period"]:
        for bound, present, alias in (("start", has_start, "from"), ("end", has_end, "to")):
            if not present:
                problems.append(Problem(
                    f"{path}.{bound}", f"required (or {alias}, or a period with the other bound)"
                ))
    start = _instant(metric_request.get("start")) or _unix(metric_request.get("from"))
    end = _instant(metric_request.get("end")) or _unix(metric_request.get("to"))
    if start is not None and end is not None and start >= end:
        field_name = "end" if given["end"] else "to"
        problems.append(Problem(f"{path}.{field_name}", "must be after start (end is inclusive)"))
    problems += _supported_range_problems(metric_request, path, start, end)
    return problems


def _supported_range_problems(
    metric_request: dict, path: str, start: datetime | None, end: datetime | None
) -> list[Problem]:
    """A bound outside the supported instants, reported at the field that set it: ``from``,
    ``to`` or a ``period`` (``start`` and ``end`` are checked where they are parsed)."""
    sources = {"start": "from", "end": "to"}
    period = metric_request.get("period")
    if isinstance(period, str) and not (start is not None and end is not None):
        try:
            derived = resolve_period(start, end, period)
        except ValueError:
            return []  # the period itself is reported where it is parsed
        sources = {"start": "period" if start is None else "from",
                   "end": "period" if end is None else "to"}
        start, end = derived
        if start is None or end is None:
            return [Problem(f"{path}.period", f"takes the range outside the supported instants, {SUPPORTED_INSTANTS}")]
    problems = []
    for bound, value in (("start", start), ("end", end)):
        field_name = sources[bound]
        if value is None or (field_name != "period" and field_name not in metric_request):
            continue
        if not EARLIEST_INSTANT <= value < LATEST_INSTANT:
            what = "takes the range outside" if field_name == "period" else "is outside"
            problems.append(Problem(f"{path}.{field_name}", f"{what} the supported instants, {SUPPORTED_INSTANTS}"))
    return problems


def _unix(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _format_problems(body: dict, prefix: str) -> list[Problem]:
    """Layout rules that look across the format options and the columns."""
    problems: list[Problem] = []
    fmt = body.get("format")
    if not isinstance(fmt, dict):
        fmt = {"extension": fmt} if isinstance(fmt, str) else {}
    fp = f"{prefix}format"
    extension = fmt.get("extension", "csv")
    extension = extension.lower() if isinstance(extension, str) else extension
    layout = fmt.get("outputFormat", "long")
    csv_only = ("csvDelimiter", "bom", "profile")
    if extension != "csv":
        for key in csv_only:
            if key in fmt:
                problems.append(Problem(f"{fp}.{key}", f"applies to csv files only, not {extension}"))
    if extension != "pdf":
        for key in ("comparePrevious",):
            if key in fmt:
                problems.append(Problem(f"{fp}.{key}", "applies to the pdf report only"))
    csv_format = body.get("csvFormat") if isinstance(body.get("csvFormat"), dict) else {}
    columns = list(_items(csv_format.get("columns")))
    if layout in ("wide", "crosstab"):
        if not any(
            c.get("field", str(c.get("heading", "")).strip().lower()) == "date"
            for _, c in columns if c.get("metricId") is None
        ):
            problems.append(Problem(
                f"{prefix}csvFormat.columns",
                f"the {layout} layout pivots on the date: add a column {{\"heading\": \"Date\"}}",
            ))
        if not any(c.get("metricId") is not None for _, c in columns):
            problems.append(Problem(
                f"{prefix}csvFormat.columns", f"the {layout} layout needs at least one metric column"
            ))
    if layout == "crosstab":
        shown = {
            c.get("field", str(c.get("heading", "")).strip().lower())
            for _, c in columns if c.get("metricId") is None
        }
        for i, dimension in _strings(csv_format.get("rowFilters")):
            if dimension not in shown:
                problems.append(Problem(
                    f"{prefix}csvFormat.rowFilters[{i}]",
                    f"the crosstab layout labels each row by its row keys: add a column showing "
                    f"{dimension!r} (e.g. {{\"heading\": \"{dimension.title()}\", \"field\": \"{dimension}\"}})",
                ))
    if layout != "long" and extension == "pdf":
        problems.append(Problem(f"{fp}.outputFormat", "the pdf report has its own layout; use long"))
    return problems


def _schema_problems(body: dict, schema: StoreSchema, prefix: str) -> list[Problem]:
    problems: list[Problem] = []
    dimensions = schema.request_dimensions
    known_dimensions = ", ".join(dimensions)
    known_measures = ", ".join(schema.measures) or "none"

    def unknown_dimension(path: str, name: str) -> None:
        problems.append(Problem(path, f"unknown dimension {name!r} (the store has: {known_dimensions})"))

    csv_format = body.get("csvFormat") if isinstance(body.get("csvFormat"), dict) else {}
    for i, name in _strings(csv_format.get("rowFilters")):
        if name != "date" and name not in dimensions:
            unknown_dimension(f"{prefix}csvFormat.rowFilters[{i}]", name)
    for i, column in _items(csv_format.get("columns")):
        cp = f"{prefix}csvFormat.columns[{i}]"
        fetch_value = column.get("fetchValue")
        if isinstance(fetch_value, str) and fetch_value not in schema.measures:
            problems.append(Problem(
                f"{cp}.fetchValue", f"unknown measure {fetch_value!r} (the store has: {known_measures})"
            ))
        column_filter = column.get("filter")
        if isinstance(column_filter, dict):
            for key in column_filter:
                if key not in dimensions:
                    unknown_dimension(f"{cp}.filter.{key}", key)
    for i, metric_request in _items(body.get("metricRequests")):
        for j, facet in _strings(metric_request.get("facets")):
            if facet not in dimensions:
                unknown_dimension(f"{prefix}metricRequests[{i}].facets[{j}]", facet)
    return problems


# Seed 003's destinations: which fields each type needs and takes.
_DESTINATION_FIELDS = {
    "aws": ((), ()),
    "s3": (
        ("aws_access_key_id", "aws_secret_access_key", "aws_bucket", "aws_region"), ("path",)
    ),
    "sftp": (("server", "username"), ("port", "password", "savedKey", "path")),
    "ftp": (("server", "username", "password"), ("port", "path")),
    "ftps": (("server", "username", "password"), ("port", "path")),
    "gcs": (("gcs_bucket",), ("path",)),
}
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(_HOST_NAME.match(value)) and not value.replace(".", "").isdigit()


def _destination_problems(body: dict, prefix: str) -> list[Problem]:
    """Seed 003's rules for ``destination`` (and the ``destinations`` list): the fields each
    type needs, fields it does not use, names that cannot be valid, and the path rules.
    Messages never repeat a credential's value."""
    problems: list[Problem] = []
    if "destination" in body and "destinations" in body:
        problems.append(Problem(
            f"{prefix}destinations", "give either destination or destinations, not both"
        ))
    found: list[tuple[str, dict]] = []
    if isinstance(body.get("destination"), dict):
        found.append((f"{prefix}destination", body["destination"]))
    for i, item in _items(body.get("destinations")):
        found.append((f"{prefix}destinations[{i}]", item))

    seen: dict[tuple, str] = {}
    for dp, destination in found:
        kind = destination.get("type", "aws")
        if not isinstance(kind, str) or kind.lower() not in _DESTINATION_FIELDS:
            continue  # the model reports the type itself
        kind = kind.lower()
        required, optional = _DESTINATION_FIELDS[kind]
        for name in required:
            if destination.get(name) in (None, ""):
                problems.append(Problem(f"{dp}.{name}", f"required for type {kind!r}"))
        known = {"type", *required, *optional}
        for name in destination:
            if name not in known and name in _ALL_DESTINATION_FIELDS:
                problems.append(Problem(f"{dp}.{name}", f"not used by type {kind!r}"))
        if kind == "sftp" and destination.get("password") is None and destination.get("savedKey") is None:
            problems.append(Problem(
                f"{dp}.password", "type 'sftp' needs a password or a savedKey (a named key)"
            ))
        server = destination.get("server")
        if isinstance(server, str) and server and not _is_host(server):
            problems.append(Problem(
                f"{dp}.server", "must be a host name or IP address, without scheme, port or path"
            ))
        for name, pattern, what in (
            ("aws_bucket", _S3_BUCKET, "an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-')"),
            ("gcs_bucket", _GCS_BUCKET, "a GCS bucket name (lower-case letters, digits, '.', '_', '-')"),
            ("aws_region", _AWS_REGION, "an AWS region such as us-west-2"),
            ("savedKey", _KEY_NAME, "the name of a saved key (letters, digits, '.', '_', '-')"),
        ):
            value = destination.get(name)
            if name in known and isinstance(value, str) and value and not pattern.match(value):
                problems.append(Problem(f"{dp}.{name}", f"{value!r} is not {what}"))
        path = destination.get("path")
        if isinstance(path, str):
            problems += [Problem(f"{dp}.path", reason) for reason in path_problems(path)]
        if kind != "aws":
            identity = (kind, destination.get("server"), destination.get("port"),
                        destination.get("aws_bucket"), destination.get("gcs_bucket"),
                        (path or "").strip("/") if isinstance(path, str) else None)
            if identity in seen:
                problems.append(Problem(dp, f"delivers to the same place as {seen[identity]}"))
            seen.setdefault(identity, dp)
    return problems


_ALL_DESTINATION_FIELDS = {
    name for required, optional in _DESTINATION_FIELDS.values() for name in (*required, *optional)
}
