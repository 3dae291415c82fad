"""The run tag naming where a run delivers, so a deployment can bound how many runs deliver to
one host at once (``tag_concurrency_limits`` in ``deploy/dagster.yaml``): a partner's SFTP
server takes a few sessions, not a queue's worth."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from export_pipeline.contract.models import DestinationSpec, DestinationType

DESTINATION_HOST_TAG = "export_pipeline/destination_host"


def destination_host(spec: DestinationSpec) -> str | None:
    """The host a delivery connects to: the server for (S)FTP, the bucket for S3 and GCS (each
    bucket is its own virtual host); ``None`` for the export bucket itself."""
    if spec.type in (DestinationType.sftp, DestinationType.ftp, DestinationType.ftps):
        return (spec.server or "").lower() or None
    if spec.type is DestinationType.s3:
        return f"{spec.aws_bucket}.s3" if spec.aws_bucket else None
    if spec.type is DestinationType.gcs:
        return f"{spec.gcs_bucket}.storage.googleapis.com" if spec.gcs_bucket else None
    return None


def destination_host_tags(specs: Iterable[DestinationSpec]) -> dict[str, str]:
    """``{DESTINATION_HOST_TAG: host}`` for a run with deliveries, else nothing. A run that
    delivers to several hosts carries them sorted and comma-joined, one value as Dagster's
    limits count it."""
    hosts = sorted({h for h in (destination_host(s) for s in specs) if h})
    return {DESTINATION_HOST_TAG: ",".join(hosts)} if hosts else {}


def body_destination_host_tags(body: Mapping[str, Any]) -> dict[str, str]:
    """The tag for a request body as written (a saved export's, before its window is set);
    destinations that do not parse carry no tag, their run fails on them anyway."""
    raw = [body["destination"]] if body.get("destination") else list(body.get("destinations") or [])
    specs = []
    for item in raw:
        try:
            specs.append(DestinationSpec.model_validate(item))
        except ValueError:
            continue
    return destination_host_tags(specs)
