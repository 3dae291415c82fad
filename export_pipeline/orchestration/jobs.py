"""The export job. Its run config is the request itself: paste a request body (or its
envelope) into the Launchpad as YAML or JSON, with nothing around it. The config schema is the
request's (``request_config``), so the Launchpad describes, scaffolds and checks it."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

from export_pipeline.destinations.sealing import plaintext_secret_paths
from export_pipeline.orchestration.delivery_ops import deliver_export, plan_deliveries
from export_pipeline.orchestration.ops import (
    combine_metrics,
    fetch_metrics,
    materialize_export,
    plan_export,
    record_export,
)
from export_pipeline.orchestration.request_config import (
    missing_request_fields,
    request_config_schema,
)


def request_run_config(document: dict[str, Any]) -> dict[str, Any]:
    """The op config carrying a request document; the plan op validates it.

    The run config is the request itself, so the console log level is set here: progress on
    stderr, not the engine's step-by-step debug events (the event log still records them).

    A root with neither the body's required fields nor an envelope is refused here: the
    config schema cannot require one of the two.

    Run config is stored in plaintext, so a request carrying a plaintext credential is refused
    here, before a run exists: seal it first (``export-pipeline seal``; the CLI seals itself).
    """
    missing = missing_request_fields(document)
    if missing:
        raise dg.DagsterInvalidConfigError(
            "the request is missing " + ", ".join(missing) + " (or give the envelope, data.body)",
            [],
            None,
        )
    plaintext = plaintext_secret_paths(document)
    if plaintext:
        raise dg.DagsterInvalidConfigError(
            "plaintext credentials are refused in run config, which Dagster stores and shows "
            "as it is (" + ", ".join(plaintext) + "). Seal them with `export-pipeline seal "
            "REQUEST.json` and submit its output.",
            [],
            None,
        )
    return {
        "ops": {"plan_export": {"config": {"request_json": json.dumps(document)}}},
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }


def export_steps(plan, fetches):
    """The steps after planning, composed inside a graph: the export job's and each saved
    export's (whose plan comes from its partition). Returns the recorded export."""
    fetched = fetches.map(fetch_metrics).collect()
    export = materialize_export(plan, combine_metrics(plan, fetched))
    deliveries = plan_deliveries(plan).map(lambda task: deliver_export(task, export)).collect()
    return record_export(plan, export, deliveries)


@dg.graph
def export_graph():
    """The export's steps, from a request in run config."""
    export_steps(*plan_export())


# A run retried after its worker died (run_retries in a deployment's dagster.yaml) runs every
# step again: the frames between steps live in memory, so a retry from the failed step would
# find none of the earlier steps' outputs and fail before it starts.
RETRY_ALL_STEPS = {"dagster/retry_strategy": "ALL_STEPS"}

export_job = export_graph.to_job(
    name="export_job",
    config=dg.ConfigMapping(
        config_fn=request_run_config,
        config_schema=request_config_schema(),
        # the document reaches the plan step as it was written, not as Dagster coerced it
        receive_processed_config_values=False,
    ),
    # In-process: fetched frames stay in memory between ops instead of being pickled to disk
    # and re-read by a new process per step.
    executor_def=dg.in_process_executor,
    description="Export metric requests to a file (CSV, XLSX or a PDF report) in the export "
    "bucket, with a signed URL, and deliver it to the request's destinations.",
    tags={"export_pipeline/kind": "export", **RETRY_ALL_STEPS},
)
