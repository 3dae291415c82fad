"""Where an export's file lands: ``<prefix>/<request id>/<UTC timestamp>_<run>.<ext>``, or
``<prefix>/<request id>/<UTC timestamp>_<run>/<filename>.<ext>`` when the request names its file.

Request ids are restricted to ``[A-Za-z0-9._-]`` and file names to ``[A-Za-z0-9_-]`` (see
``request``; checked again here), so nothing in a request can steer a key outside its
prefix. The run id suffix keeps two exports of the same request in the same second from
overwriting each other. An empty prefix puts exports at the bucket root.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from export_pipeline.contract.envelope import REQUEST_ID_PATTERN
from export_pipeline.contract.models import FILENAME_PATTERN
from export_pipeline.settings import DEFAULT_PREFIX  # the deployment default (EXPORT_PREFIX)


def export_key(
    request_id: str, created_at: datetime, run_id: str, prefix: str = DEFAULT_PREFIX,
    extension: str = "csv", filename: str | None = None,
) -> str:
    if not re.match(REQUEST_ID_PATTERN, request_id) or request_id in (".", ".."):
        raise ValueError(f"request id {request_id!r} cannot be part of an object key")
    if filename is not None and not re.match(FILENAME_PATTERN, filename):
        raise ValueError(f"file name {filename!r} cannot be part of an object key")
    stamp = created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    run_stamp = f"{request_id}/{stamp}_{run_id[:8]}"
    name = f"{run_stamp}/{filename}.{extension}" if filename is not None else f"{run_stamp}.{extension}"
    folder = prefix.strip("/")
    return f"{folder}/{name}" if folder else name


def fixed_export_key(path: str, prefix: str = DEFAULT_PREFIX, extension: str = "csv") -> str:
    """A saved export's partition file, ``<prefix>/<name>/<partition>.<ext>``: the same key on
    every run of the partition, so a re-run replaces it."""
    name = f"{path.strip('/')}.{extension}"
    folder = prefix.strip("/")
    return f"{folder}/{name}" if folder else name
