"""The Dagster definitions that ``workspace.yaml`` and the CLI load.

Environment: ``EXPORT_BUCKET`` (required to run), ``EXPORT_METRICS_PATH`` (default: the demo
store), ``EXPORT_URL_TTL`` (seconds, default 3600), ``EXPORT_PREFIX`` (default ``exports``),
``EXPORT_PART_SIZE`` (multipart part size in bytes, default 8 MiB; S3's minimum is 5 MiB).
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_aws.s3 import S3Resource

from export_pipeline.demo_store import default_path
from export_pipeline.file_naming import DEFAULT_PREFIX
from export_pipeline.orchestration.jobs import export_job
from export_pipeline.orchestration.resources import ExportStorage, ParquetMetricStore
from export_pipeline.s3_upload import PART_SIZE


def _env_or(name: str, default):
    """``EnvVar(name)`` when it is set (so the UI shows where a value came from), else ``default``."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def _env_int_or(name: str, default: int):
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        jobs=[export_job],
        resources={
            "metric_source": ParquetMetricStore(
                path=_env_or("EXPORT_METRICS_PATH", str(default_path()))
            ),
            "export_storage": ExportStorage(
                s3=S3Resource(),
                bucket=dg.EnvVar("EXPORT_BUCKET"),
                prefix=_env_or("EXPORT_PREFIX", DEFAULT_PREFIX),
                url_ttl_seconds=_env_int_or("EXPORT_URL_TTL", 3600),
                part_size_bytes=_env_int_or("EXPORT_PART_SIZE", PART_SIZE),
            ),
            "io_manager": dg.mem_io_manager,
        },
    )


defs = build_definitions()
