"""Turn a validated request into the list of store queries an export runs.

One fetch per metric request and range-guard window. Each query asks only for what the
export uses: the measures of the columns bound to it and the dimensions that rows, facets and
column filters need.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

from export_pipeline.store.source import ENTITY_DIMENSION, MetricQuery, store_column
from export_pipeline.contract.models import ExportRequest, FileFormat, MetricRequest
from export_pipeline.timeline.windows import MAX_WINDOW, split_range


@dataclass(frozen=True)
class FetchTask:
    request_index: int
    window_index: int
    query: MetricQuery
    previous: bool = False

    @property
    def key(self) -> str:
        """A Dagster mapping key (``[A-Za-z0-9_]+``) naming the request and its window."""
        key = f"request{self.request_index}_window{self.window_index}"
        return f"previous_{key}" if self.previous else key

    def describe(self, request: MetricRequest) -> dict:
        out = {
            "key": self.key,
            "metricId": request.metric_id,
            **self.query.window.to_dict(),
            "aggregationPeriod": self.query.granularity.label,
            "measures": list(self.query.measures),
            "dimensions": list(self.query.dimensions),
        }
        if self.query.time_zone != "UTC":
            out["timezone"] = self.query.time_zone
        if self.query.samples:
            out["samples"] = True
        if self.previous:
            out["previousPeriod"] = True
        return out


@dataclass(frozen=True)
class ScanTask:
    """One read of the store that answers several fetches at once.

    Metric requests over the same window, entities, entity type, period and dimensions differ
    only in the measures they sum; one query summing all of them reads the store once instead
    of once per request, and gives each request exactly the rows and sums its own would.
    """

    tasks: tuple[FetchTask, ...]

    @property
    def key(self) -> str:
        return "__".join(t.key for t in self.tasks)

    @property
    def query(self) -> MetricQuery:
        measures = (m for t in self.tasks for m in t.query.measures)
        return replace(self.tasks[0].query, measures=tuple(dict.fromkeys(measures)))


@dataclass(frozen=True)
class ExportPlan:
    request_id: str
    request: ExportRequest
    tasks: list[FetchTask] = field(default_factory=list)
    previous_request: ExportRequest | None = None
    path_prefix: str = ""
    """The JSON path prefix of the request's fields in the submitted document."""

    @property
    def scans(self) -> list[ScanTask]:
        """The fetches grouped into store reads: one per distinct query apart from measures."""
        groups: dict[MetricQuery, list[FetchTask]] = {}
        for task in self.tasks:
            groups.setdefault(replace(task.query, measures=()), []).append(task)
        return [ScanTask(tuple(tasks)) for tasks in groups.values()]

    def describe(self) -> dict:
        """What ``validate`` prints and a run records: the fetches and their windows."""
        fmt = self.request.format
        return {
            "requestId": self.request_id,
            "format": fmt.extension.value,
            "outputFormat": fmt.output_format.value,
            "timezone": fmt.timezone,
            "fetches": [
                t.describe(self.request.metric_requests[t.request_index]) for t in self.tasks
            ],
        }


def _row_dimensions(request: ExportRequest) -> list[str]:
    return [d for d in request.csv_format.row_filters if d != ENTITY_DIMENSION]


def query_dimensions(request: ExportRequest, index: int) -> tuple[str, ...]:
    """Store dimensions (besides the entity) a metric request must be grouped by."""
    metric_request = request.metric_requests[index]
    wanted = [*_row_dimensions(request), *metric_request.facets]
    for _, column in request.columns_of(metric_request.metric_id):
        wanted += list(column.filter_values())
    columns = (store_column(d) for d in wanted)
    return tuple(dict.fromkeys(c for c in columns if c != store_column(ENTITY_DIMENSION)))


def previous_period(request: ExportRequest) -> ExportRequest:
    """The same request over the period of equal length just before each metric request's."""
    shifted = []
    for m in request.metric_requests:
        length = m.end - m.start + timedelta(microseconds=1)
        shifted.append(m.model_copy(update={"start": m.start - length, "end": m.end - length}))
    return request.model_copy(update={"metric_requests": shifted})


def _tasks(
    request: ExportRequest, max_span: timedelta, previous: bool = False
) -> list[FetchTask]:
    tasks = []
    for index, metric_request in enumerate(request.metric_requests):
        measures = tuple(dict.fromkeys(
            c.fetch_value for _, c in request.columns_of(metric_request.metric_id)
            if c.fetch_value is not None
        ))
        windows = split_range(
            metric_request.start, metric_request.end, metric_request.granularity, max_span,
            request.timezone,
        )
        for window_index, window in enumerate(windows):
            query = MetricQuery(
                window=window,
                period=metric_request.aggregation_period
                if metric_request.decimation is None else metric_request.granularity,
                entities=tuple(metric_request.entities) if metric_request.entities else None,
                entity_type=metric_request.entity_type,
                dimensions=query_dimensions(request, index),
                measures=measures,
                time_zone=request.timezone,
                samples=request.needs_samples(index),
            )
            tasks.append(FetchTask(index, window_index, query, previous))
    return tasks


def plan_export(
    request: ExportRequest, request_id: str, max_span: timedelta = MAX_WINDOW,
    path_prefix: str = "",
) -> ExportPlan:
    tasks = _tasks(request, max_span)
    previous = None
    if request.format.extension is FileFormat.pdf and request.format.compare_previous:
        previous = previous_period(request)
        tasks += _tasks(previous, max_span, previous=True)
    return ExportPlan(request_id=request_id, request=request, tasks=tasks,
                      previous_request=previous, path_prefix=path_prefix)
