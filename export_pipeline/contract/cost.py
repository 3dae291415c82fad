"""What a request will cost, known from the request alone before anything runs.

Rows, columns, cells and store reads are estimated by arithmetic on the request (buckets per
range from the bucket width and time zone, the entities it names, the layout) and refused
above the operator's limits (``settings.LimitSettings``), each with the JSON path of what to
change. Validation calls this, so the CLI, the Launchpad, the inbox and saved exports refuse
the same requests. Dimensions whose values the request does not name (entities left out,
other row keys, facets) count as one value each: the estimate is then a lower bound, and the
per-file limits still hold when the file is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from export_pipeline.contract.models import (
    expanded_facets,
    ExportRequest,
    FileFormat,
    Layout,
    MetricRequest,
)
from export_pipeline.contract.problems import Problem
from export_pipeline.settings import LimitSettings
from export_pipeline.store.source import ENTITY_DIMENSION
from export_pipeline.timeline.periods import bucket_count
from export_pipeline.timeline.windows import MAX_WINDOW, split_range


@dataclass(frozen=True)
class CostEstimate:
    """The export's estimated size: its table and the store reads that fill it."""

    rows: int
    columns: int
    buckets: int
    series: int
    windows: tuple[int, ...]
    """Store reads per metric request (its previous period's included for a comparison)."""

    @property
    def cells(self) -> int:
        return self.rows * self.columns


def _windows(metric_request: MetricRequest, request: ExportRequest, ceiling: int) -> int:
    """The range guard's window count, or a lower bound above ``ceiling`` without cutting."""
    lower = math.ceil((metric_request.end - metric_request.start) / MAX_WINDOW)
    if lower > ceiling:
        return lower
    return len(split_range(
        metric_request.start, metric_request.end, metric_request.granularity, MAX_WINDOW,
        request.timezone,
    ))


def _series(request: ExportRequest) -> int:
    """Combinations of the row keys other than the date: the entities named, when the rows
    are per entity and every metric request names them; other keys count as one."""
    if ENTITY_DIMENSION not in request.csv_format.row_filters:
        return 1
    named = [m.entities for m in request.metric_requests]
    if any(entities is None for entities in named):
        return 1
    return len({entity for entities in named for entity in entities})


def estimate(request: ExportRequest, ceiling: int | None = None) -> CostEstimate:
    """The request's cost; ``ceiling`` stops cutting windows once a count is surely above it."""
    ceiling = ceiling if ceiling is not None else 1 << 62
    granularity = request.metric_requests[0].granularity
    start = min(m.start for m in request.metric_requests)
    end = max(m.end for m in request.metric_requests)
    buckets = bucket_count(start, end, granularity, request.timezone)
    series = _series(request)
    metric_columns = sum(1 for c in request.csv_format.columns if c.is_metric)
    layout = request.format.output_format
    if layout is Layout.wide:
        rows, columns = buckets, 1 + metric_columns * series
    elif layout is Layout.crosstab:
        dimension_columns = sum(
            1 for c in request.csv_format.columns if not c.is_metric and c.dimension_name != "date"
        )
        rows = series * metric_columns
        columns = dimension_columns + (1 if metric_columns > 1 else 0) + buckets
    else:
        rows = buckets * series
        columns = len(request.csv_format.columns) + len(expanded_facets(request))
    windows = tuple(_windows(m, request, ceiling) for m in request.metric_requests)
    if request.format.extension is FileFormat.pdf and request.format.compare_previous:
        windows = tuple(2 * w for w in windows)  # the previous period is as long
    return CostEstimate(rows, columns, buckets, series, windows)


def _previous_period_problems(request: ExportRequest, prefix: str) -> list[Problem]:
    for m in request.metric_requests:
        length = m.end - m.start + timedelta(microseconds=1)
        try:
            m.start - length
        except OverflowError:
            return [Problem(
                f"{prefix}format.comparePrevious",
                "the previous period of this range would begin before year 1; compare a shorter range",
            )]
    return []


def cost_problems(request: ExportRequest, limits: LimitSettings, prefix: str = "") -> list[Problem]:
    """Every limit the request would exceed, each at the path of what to change."""
    problems: list[Problem] = []
    count = len(request.metric_requests)
    if count > limits.metric_requests:
        problems.append(Problem(
            f"{prefix}metricRequests",
            f"{count:,} metric requests; an export takes at most {limits.metric_requests:,} "
            "(EXPORT_MAX_METRIC_REQUESTS)",
        ))
    for i, m in enumerate(request.metric_requests):
        if m.entities is not None and len(m.entities) > limits.entities:
            problems.append(Problem(
                f"{prefix}metricRequests[{i}].entities",
                f"{len(m.entities):,} entity ids; a metric request names at most "
                f"{limits.entities:,} (EXPORT_MAX_ENTITIES): leave entities out for all of them, "
                "or filter by entityType",
            ))
    given = len(request.csv_format.columns)
    if given > limits.columns:
        problems.append(Problem(
            f"{prefix}csvFormat.columns",
            f"{given:,} columns; a file has at most {limits.columns:,} (EXPORT_MAX_COLUMNS)",
        ))
    if problems:
        return problems  # sizes too large to estimate anything else from

    problems += _previous_period_problems(request, prefix)
    cost = estimate(request, ceiling=limits.windows)
    layout = request.format.output_format.value
    for i, windows in enumerate(cost.windows):
        if windows > limits.windows:
            problems.append(Problem(
                f"{prefix}metricRequests[{i}]",
                f"its range takes {windows:,} store reads of at most 90 days; an export makes "
                f"at most {limits.windows:,} (EXPORT_MAX_WINDOWS): shorten the range",
            ))
    if not any(w > limits.windows for w in cost.windows) and sum(cost.windows) > limits.windows:
        problems.append(Problem(
            f"{prefix}metricRequests",
            f"the metric requests take {sum(cost.windows):,} store reads of at most 90 days "
            f"together; an export makes at most {limits.windows:,} (EXPORT_MAX_WINDOWS)",
        ))
    shape = (
        f"{cost.buckets:,} buckets of {request.metric_requests[0].granularity.label}"
        + (f" x {cost.series:,} entities" if cost.series > 1 else "")
    )
    if cost.rows > limits.rows:
        problems.append(Problem(
            f"{prefix}metricRequests",
            f"the {layout} export would have about {cost.rows:,} rows ({shape}); at most "
            f"{limits.rows:,} (EXPORT_MAX_ROWS): shorten the range, widen the buckets or name "
            "fewer entities",
        ))
    if cost.columns > limits.columns:
        problems.append(Problem(
            f"{prefix}format.outputFormat",
            f"the {layout} layout would have {cost.columns:,} columns ({shape}); at most "
            f"{limits.columns:,} (EXPORT_MAX_COLUMNS): use the long layout, a shorter range or "
            "wider buckets",
        ))
    if request.format.extension is FileFormat.xlsx:
        from export_pipeline.formats.xlsx_writer import MAX_COLUMNS

        if cost.columns > MAX_COLUMNS:
            problems.append(Problem(
                f"{prefix}format.extension",
                f"the {layout} export would have {cost.columns:,} columns and an Excel sheet "
                f"holds {MAX_COLUMNS:,}: use csv, the long layout, or fewer entities or buckets",
            ))
    if cost.cells > limits.cells and cost.rows <= limits.rows and cost.columns <= limits.columns:
        problems.append(Problem(
            f"{prefix}metricRequests",
            f"the {layout} export would have about {cost.cells:,} cells ({cost.rows:,} rows x "
            f"{cost.columns:,} columns); at most {limits.cells:,} (EXPORT_MAX_CELLS)",
        ))
    return problems
