"""What an export run reports, read back from the Dagster instance: its progress while it runs,
the response (bucket, key, signed URL, rows, bytes) of a success, the errors of a failure or a
cancellation. Shared by the command line, the export service, the inbox's result sensors and
the notification sensors."""

from collections.abc import Callable
from typing import Any

import dagster as dg

from export_pipeline.contract.response import build_response
from export_pipeline.orchestration.export_assets import is_export_asset_key

NAME_TAG = "export_pipeline/name"
WINDOW_TAG = "export_pipeline/window"
NOTIFICATION_TAG = "export_pipeline/notification"


def export_response(
    instance: dg.DagsterInstance, run_id: str, asset_key: dg.AssetKey | None = None,
    sign: Callable[[str, str], str] | None = None,
) -> dict[str, Any] | None:
    """The response of the run's export file, from its materialization metadata (the last
    materialization of an export asset: ``exports/<request id>`` or ``saved_exports/<name>``;
    of ``asset_key`` if given, when one run materialized several).

    ``sign(bucket, key)``, when given, signs the link now: a sensor that hands the response on
    (a message, an inbox result) may run long after the file was written, when the link signed
    then has expired (the daemon was down longer than its lifetime)."""
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    for entry in reversed(entries):
        materialization = entry.asset_materialization
        if materialization is None or not is_export_asset_key(materialization.asset_key):
            continue
        if asset_key is not None and materialization.asset_key != asset_key:
            continue
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        return build_response(
            request_id=metadata.get("request_id"), bucket=metadata["bucket"], key=metadata["key"],
            signed_url=sign(metadata["bucket"], metadata["key"]) if sign else metadata["signed_url"],
            rows=metadata["rows"], bytes=metadata["bytes"],
        )
    return None


def canceled_errors() -> list[dict[str, str]]:
    """Why a canceled run has no file: one wording for the API's export, its inbox result and
    its onFailure messages."""
    return [{"path": "", "message": "the run was canceled"}]


def failure_errors(
    step_failures: list[dg.DagsterEvent], run_failure: dg.DagsterEvent | None
) -> list[dict[str, str]]:
    """Why the run failed: a request's problems each with its JSON path, else each failed
    step's reason, else the run's own failure message."""
    errors: list[dict[str, str]] = []
    for event in step_failures:
        data = event.step_failure_data
        user = data.user_failure_data if data else None
        problems = user.metadata.get("problems") if user and user.metadata else None
        if problems is not None:
            errors += [_problem(p) for p in problems.value]
        elif data is not None:
            errors.append({"path": "", "message": step_failure_reason(data), "step": event.step_key or ""})
    if not errors and run_failure is not None:
        errors.append({"path": "", "message": run_failure_reason(run_failure) or "the run failed"})
    return errors


def _problem(text: str) -> dict[str, str]:
    path, sep, message = text.partition(": ")
    if sep and " " not in path:
        return {"path": path, "message": message}
    return {"path": "", "message": text}


def step_failure_reason(failure: Any) -> str:
    """What went wrong in a step: a ``Failure``'s description, else the innermost error."""
    if failure.user_failure_data and failure.user_failure_data.description:
        return failure.user_failure_data.description
    return _innermost(failure.error)


def run_failure_reason(run_failure: dg.DagsterEvent) -> str:
    """Why a run failed before any step did (a resource that could not start, such as an
    export bucket that does not take files): the innermost error, else the event's message."""
    data = run_failure.job_failure_data
    if data is not None and data.error is not None:
        return _innermost(data.error)
    return run_failure.message or ""


def _innermost(error: Any) -> str:
    """The innermost error's message, without the exception's class path in front."""
    while error.cause is not None:
        error = error.cause
    message = error.message.strip()
    head, sep, rest = message.partition(": ")
    if sep and error.cls_name and head.split(".")[-1] == error.cls_name and "." in head:
        return rest.strip()
    return message


def error_text(errors: list[dict[str, str]]) -> str:
    return "\n".join(f"{e['path']}: {e['message']}" if e.get("path") else e["message"] for e in errors)


def run_progress(instance: dg.DagsterInstance, run_id: str) -> dict[str, int | None]:
    """Store reads done of total (the plan's ``fetches`` outputs, the fetch steps that
    succeeded) and the rows of the combined table once it exists."""
    records = instance.all_logs(
        run_id, of_type={dg.DagsterEventType.STEP_OUTPUT, dg.DagsterEventType.STEP_SUCCESS}
    )
    total = done = 0
    rows = None
    for record in records:
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type is dg.DagsterEventType.STEP_OUTPUT:
            output = event.step_output_data
            if event.step_key == "plan_export" and output.output_name == "fetches":
                total += 1
            elif event.step_key == "combine_metrics":
                rows = _int(output.metadata.get("rows"))
        elif event.step_key.startswith("fetch_metrics["):
            done += 1
    return {"fetches_done": done, "fetches_total": total, "rows": rows}


def _int(value: Any) -> int | None:
    return int(value.value) if value is not None and value.value is not None else None
