"""The names a request uses, checked against the metric store's schema: dimensions (row
filters, facets, column filters) and measures (``fetchValue``)."""

from __future__ import annotations

from export_pipeline.contract.problems import Problem
from export_pipeline.contract.walk import items as _items, strings as _strings
from export_pipeline.store.source import StoreSchema


def schema_problems(body: dict, schema: StoreSchema, prefix: str) -> list[Problem]:
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
