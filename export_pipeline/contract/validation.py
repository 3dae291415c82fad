"""Validate a submitted request document: every problem at once, each with its JSON path.

Three passes run over the document, and all of them always run, so a user fixes a request in
one round trip: the shape (pydantic), the rules across fields (column bindings, sort indices,
unique ids; here, and ``destination_rules``) and the names checked against the metric store's
schema (``schema_rules``). The rules read the raw document defensively, so a type error in one
place does not hide a wrong name in another. Every entry point (CLI, Launchpad, sensors) goes
through ``validate_document``, once. A request that parses is also costed
(``contract.cost``) and refused above the limits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from export_pipeline.contract.destination_rules import destination_problems
from export_pipeline.contract.envelope import unwrap
from export_pipeline.contract.cost import cost_problems
from export_pipeline.contract.models import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    MAX_HEADING_LENGTH,
    RANGE_MESSAGE,
    SUPPORTED_INSTANTS,
    ExportRequest,
    has_control_characters,
    in_utc,
    resolve_period,
)
from export_pipeline.contract.problems import InvalidRequest, Problem, from_pydantic
from export_pipeline.contract.schema_rules import schema_problems
from export_pipeline.contract.walk import items as _items, strings as _strings
from export_pipeline.store.source import StoreSchema
from export_pipeline.timeline.periods import AggregationPeriod, Granularity, parse_granularity
from export_pipeline.settings import LimitSettings, get_limits

DATE_DIMENSION = "date"


@dataclass(frozen=True)
class ValidatedRequest:
    request: ExportRequest
    request_id: str | None
    path_prefix: str = ""
    """Where the body's fields sit in the document (``data.body.`` in an envelope), so a
    problem found later, as a run plans its deliveries, is named by its path as submitted."""


def validate_document(
    document: Any, schema: StoreSchema | None = None, limits: LimitSettings | None = None
) -> ValidatedRequest:
    """The request in ``document`` (a request body or its envelope), or ``InvalidRequest``.
    ``limits`` bound what it may cost (the configured ``EXPORT_MAX_*`` when not given)."""
    envelope = unwrap(document)
    body, prefix, problems = envelope.body, envelope.prefix, list(envelope.problems)
    request = None
    if body is not None:
        try:
            request = ExportRequest.model_validate(body)
        except ValidationError as error:
            problems += [
                from_pydantic(e, prefix) for e in error.errors()
                if not str(e.get("ctx", {}).get("error", "")).startswith(RANGE_MESSAGE)
            ]  # a missing range is reported per field by the cross-field pass
        problems += _cross_field_problems(body, prefix)
        problems += destination_problems(body, prefix)
        if schema is not None:
            problems += schema_problems(body, schema, prefix)
        if request is not None:
            problems += cost_problems(request, limits or get_limits(), prefix)
    problems = list(dict.fromkeys(problems))
    if problems or request is None:
        raise InvalidRequest(problems)
    return ValidatedRequest(request=request, request_id=envelope.request_id, path_prefix=prefix)


def validated_request(config_document: str | Mapping, schema: StoreSchema | None) -> ValidatedRequest:
    """The request a run was given: its config's document (a mapping, or the JSON text run
    config carries it as), validated once against ``schema``."""
    if isinstance(config_document, str):
        try:
            config_document = json.loads(config_document)
        except ValueError as error:
            raise InvalidRequest([Problem("", f"the run's request is not JSON: {error}")]) from None
    return validate_document(config_document, schema)


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
