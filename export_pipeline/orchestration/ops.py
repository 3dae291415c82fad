"""The export job's ops: plan, fetch (fanned out), combine, materialize.

Each op hands its work to the plain modules and only adds what Dagster needs: config,
resources, dynamic outputs and metadata.
"""

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from typing import Optional

import dagster as dg
import polars as pl

from export_pipeline.table import combine
from export_pipeline.table.model import ExportTable
from export_pipeline.planning import plan as planning
from export_pipeline.planning.prepared import PreparedExport, prepared_for_run
from export_pipeline.publishing.publish import ExportResult, deliver
from export_pipeline.publishing.keys import export_location, fixed_export_location
from export_pipeline.store.source import MetricSourceError, SumOutOfRange
from export_pipeline.orchestration.export_assets import request_asset_key
from export_pipeline.orchestration.resources import (
    ExportStorage,
    MetricSourceResource,
    ReportBranding,
)
from export_pipeline.contract.problems import InvalidRequest

PreparedRun = dg.ResourceParam[Optional[PreparedExport]]
"""The ``prepared_export`` resource: the request the command line validated and planned, with
its store reads under way, for the run it started in process; None (the code location's
binding) for every other run, whose plan op validates the request itself."""

class ExportRequestConfig(dg.Config):
    """The submitted request document (a request body or its envelope) as JSON text."""

    request_json: str


class ExportKeyConfig(dg.Config):
    """Where the file lands when the launcher chose it: the export service's file under its
    tenant's prefix (``tenants/<tenant>/<export id>``), so a deletion knows the one key to
    remove. Empty (every other run): see ``materialize_export``."""

    fixed_key: str = ""


@dataclass(frozen=True)
class FetchedFrame:
    task: planning.FetchTask
    frame: pl.DataFrame


# The plan is stored (small, credentials sealed) so deliveries can be re-executed from
# failure; the fetch tasks stay in memory.
PLAN_OUTS = {
    "plan": dg.Out(dg.Any, io_manager_key="delivery_io_manager"),
    "fetches": dg.DynamicOut(dg.Any),
}
PLAN_DESCRIPTION = "Validate the request against the store's schema and cut its 90-day windows."


@dg.op(out=PLAN_OUTS, description=PLAN_DESCRIPTION)
def plan_export(
    context: dg.OpExecutionContext,
    config: ExportRequestConfig,
    metric_source: MetricSourceResource,
    prepared_export: PreparedRun,
):
    yield from plan_outputs(context, config.request_json, metric_source, prepared_export)


def plan_outputs(
    context: dg.OpExecutionContext,
    document: str | dict,
    metric_source: MetricSourceResource,
    prepared_export: Optional[PreparedExport] = None,
    body_path: Optional[str] = None,
    source: Optional[str] = None,
):
    """The plan op's work on a request document (or its JSON text), whichever op (export job
    or saved export) found the document: validated once, unless the command line already did.
    A saved export names its file (``source``) and where the body sits in it (``body_path``),
    so problems point into what its operator wrote."""
    try:
        prepared = prepared_for_run(
            document, metric_source.get_source, context.run_id, prepared_export, body_path
        )
    except InvalidRequest as error:
        raise dg.Failure(
            description=f"invalid export request{f' in {source}' if source else ''}:\n{error}",
            metadata={"problems": [str(p) for p in error.problems]},
            allow_retries=False,
        ) from None
    except MetricSourceError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    plan = prepared.plan
    description = plan.describe()
    scans = plan.scans
    context.log.info(
        f"request {plan.request_id}: {len(plan.request.metric_requests)} metric requests, "
        f"{len(plan.tasks)} fetches in {len(scans)} store reads"
        + (" (validated before the run)" if prepared is prepared_export else "")
    )
    yield dg.Output(
        plan,
        "plan",
        metadata={
            "request_id": plan.request_id,
            "fetches": len(plan.tasks),
            "windows": dg.MetadataValue.json(description["fetches"]),
        },
    )
    for scan in scans:
        yield dg.DynamicOutput(scan, mapping_key=scan.key, output_name="fetches")


@dg.op(
    description="Read one window of the metric store for the metric requests that share it "
    "(one query summing all their measures)."
)
def fetch_metrics(
    context: dg.OpExecutionContext,
    scan: planning.ScanTask,
    metric_source: MetricSourceResource,
    prepared_export: PreparedRun,
) -> list[FetchedFrame]:
    read_ahead = prepared_export.read_ahead if prepared_export is not None else None
    try:
        if read_ahead is not None and prepared_export.run_id == context.run_id:
            frame, ahead = read_ahead.fetch(scan.query)
        else:
            frame, ahead = metric_source.get_source().fetch(scan.query), False
    except MetricSourceError as error:
        raise dg.Failure(description=str(error)) from None
    context.log.info(f"fetched {scan.key}: {frame.height} rows" + (" (read ahead)" if ahead else ""))
    context.add_output_metadata({
        "rows": frame.height,
        "measures": list(scan.query.measures),
        **scan.query.window.to_dict(),
    })
    # The same frame for every request of the scan: combine sums them in one pass.
    return [FetchedFrame(task=task, frame=frame) for task in scan.tasks]


@dg.op(description="Join the metric requests on the row keys and map the column descriptors.")
def combine_metrics(
    context: dg.OpExecutionContext, plan: planning.ExportPlan, fetched: list[list[FetchedFrame]]
) -> ExportTable:
    by_request: dict[int, list[pl.DataFrame]] = defaultdict(list)
    previous: dict[int, list[pl.DataFrame]] = defaultdict(list)
    items = (item for scan in fetched for item in scan)
    for item in sorted(items, key=lambda f: (f.task.request_index, f.task.window_index)):
        (previous if item.task.previous else by_request)[item.task.request_index].append(item.frame)
    try:
        table = combine.combine(plan.request, by_request)
        if plan.previous_request is not None:
            table = replace(table, previous=combine.combine(plan.previous_request, previous))
    except SumOutOfRange as error:  # a total the export cannot write: no retry changes it
        raise dg.Failure(description=str(error), allow_retries=False) from None
    context.log.info(f"combined: {table.rows} rows x {len(table.headings)} columns")
    context.add_output_metadata({"rows": table.rows, "columns": len(table.headings)})
    return table


@dg.op(
    description="Write the file (CSV, XLSX or PDF), stream it to the export bucket and sign a download URL.",
    # Stored (a small record: bucket, key, counts), so a failed delivery can be re-executed
    # from failure without recomputing the file.
    out=dg.Out(io_manager_key="delivery_io_manager"),
)
def materialize_export(
    context: dg.OpExecutionContext,
    plan: planning.ExportPlan,
    table: ExportTable,
    export_storage: ExportStorage,
    report_branding: ReportBranding,
    config: ExportKeyConfig,
):
    """A partitioned run (a saved export's period) writes the fixed key
    ``<request id>/<partition>``, so a re-run replaces the file (a multipart upload completes
    atomically); a run given a key (the export service's) writes that key; any other run writes
    a new key (``<request id>/<timestamp>_<run>``). ``keys`` also names the file for the
    destinations' folders (a new key's name is new on every run too)."""
    fmt = plan.request.format
    if config.fixed_key:
        location = fixed_export_location(
            config.fixed_key, plan.request_id, export_storage.prefix, fmt.extension.value
        )
    elif context.has_partition_key:
        location = fixed_export_location(
            f"{plan.request_id}/{context.partition_key}", plan.request_id, export_storage.prefix,
            fmt.extension.value,
        )
    else:
        location = export_location(
            plan.request_id, datetime.now(timezone.utc), context.run_id, export_storage.prefix,
            extension=fmt.extension.value, filename=fmt.filename,
        )
    result = deliver(
        table,
        plan.request,
        branding=report_branding.get_branding(),
        request_id=plan.request_id,
        client=export_storage.get_client(),
        presign_client=export_storage.get_presign_client(),
        bucket=export_storage.bucket,
        location=location,
        url_ttl_seconds=export_storage.url_ttl_seconds,
        part_size=export_storage.part_size_bytes,
    )
    context.log.info(f"wrote {result.bytes} bytes to s3://{result.bucket}/{result.key}")
    return result


@dg.op(
    description="Record the export (file, rows, signed URL) once it is written and delivered: "
    "a saved export's partition, or the request's exports/<request id> asset.",
    out=dg.Out(io_manager_key="delivery_io_manager"),
)
def record_export(
    context: dg.OpExecutionContext,
    plan: planning.ExportPlan,
    export: ExportResult,
    deliveries: list,
    export_storage: ExportStorage,
):
    fmt = plan.request.format
    metadata = {
        "rows": export.rows,
        "bytes": export.bytes,
        "bucket": export.bucket,
        "key": export.key,
        "signed_url": dg.MetadataValue.url(export.signed_url),
        "url_expires_in_seconds": export_storage.url_ttl_seconds,
        "request_id": export.request_id,
        "format": fmt.extension.value,
        "layout": fmt.output_format.value,
        "timezone": fmt.timezone,
        "windows": dg.MetadataValue.json(plan.describe()["fetches"]),
        "deliveries": len(deliveries),
    }
    if context.has_assets_def:  # a saved export's asset: this output is its materialization
        yield dg.Output(export, metadata=metadata)
        return
    yield dg.AssetMaterialization(
        asset_key=request_asset_key(plan.request_id),
        description=f"export {plan.request_id} (run {context.run_id})",
        metadata=metadata,
    )
    yield dg.Output(export)
