"""A request made ready to run: validated once, planned once, and, for the command line, its
store reads already started.

Every entry point validates a request exactly once. The command line does it before the run
starts (``prepare_export``) and hands the result to its in-process run; a run started any
other way (the Launchpad, the inbox sensor, a saved export's schedule) is prepared in the
plan op from its run config (``prepared_for_run``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from export_pipeline.contract.envelope import moved_path, moved_problems
from export_pipeline.contract.problems import InvalidRequest
from export_pipeline.contract.validation import ValidatedRequest, validate_document, validated_request
from export_pipeline.planning.plan import ExportPlan, plan_export
from export_pipeline.store.read_ahead import ReadAhead
from export_pipeline.store.source import MetricSource


@dataclass(frozen=True)
class PreparedExport:
    """The validated request and its plan, for the run ``run_id``; ``read_ahead`` holds the
    store reads started for it, if any."""

    validated: ValidatedRequest
    plan: ExportPlan
    run_id: str
    read_ahead: ReadAhead | None = None

    def close(self) -> None:
        if self.read_ahead is not None:
            self.read_ahead.cancel()


def prepare_export(
    document: Any, source: MetricSource, run_id: str, read_ahead: bool = False
) -> PreparedExport:
    """Validate ``document`` against ``source``'s schema and plan it for run ``run_id`` (the
    plan's request id when the request names none); with ``read_ahead``, start its reads."""
    return _planned(validate_document(document, source.schema()), run_id, source if read_ahead else None)


def prepared_for_run(
    config_document: str | Mapping, source: Callable[[], MetricSource], run_id: str,
    prepared: PreparedExport | None = None, body_path: str | None = None,
) -> PreparedExport:
    """What run ``run_id`` exports: ``prepared`` when it was made for this run, else its run
    config's request, validated against ``source()``'s schema and planned now. Raises
    ``InvalidRequest`` or ``MetricSourceError``.

    ``body_path`` is where the body sits in what the user wrote when the service wrapped it for
    them (a saved export's definition file): the problems, and the plan's path prefix for those
    found later, name that place rather than the envelope."""
    if prepared is not None and prepared.run_id == run_id:
        return prepared
    try:
        validated = validated_request(config_document, source().schema())
    except InvalidRequest as error:
        if body_path is None:
            raise
        raise InvalidRequest(moved_problems(error.problems, body_path)) from None
    if body_path is not None:
        validated = replace(validated, path_prefix=moved_path(validated.path_prefix, body_path))
    return _planned(validated, run_id)


def _planned(
    validated: ValidatedRequest, run_id: str, read_from: MetricSource | None = None
) -> PreparedExport:
    plan = plan_export(
        validated.request, validated.request_id or run_id, path_prefix=validated.path_prefix
    )
    reads = ReadAhead(read_from, [scan.query for scan in plan.scans]) if read_from else None
    return PreparedExport(validated=validated, plan=plan, run_id=run_id, read_ahead=reads)
