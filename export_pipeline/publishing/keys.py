"""Where an export's file lands: ``<prefix>/<request id>/<UTC timestamp>_<run>.<ext>``, or
``<prefix>/<request id>/<UTC timestamp>_<run>/<filename>.<ext>`` when the request names its file;
and the name it is delivered under in a destination's folder (SFTP, FTP, S3, GCS):
``<request id>_<UTC timestamp>_<run>.<ext>``, or ``<request id>_<UTC timestamp>_<run>_<filename>.<ext>``.

Request ids are restricted to ``[A-Za-z0-9._-]`` and file names to ``[A-Za-z0-9_-]`` (see
``request``; checked again here), so nothing in a request can steer a key outside its
prefix. The run id suffix keeps two exports of the same request in the same second from
overwriting each other, in our bucket and at a destination alike. An empty prefix puts exports
at the bucket root.

A fixed key (a saved export's partition, an export service's file) is the same on every run, by
design; its delivered name is ``<request id>_<last segment of the key>``, so a re-run replaces
it at the destination too.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from export_pipeline.contract.envelope import REQUEST_ID_PATTERN
from export_pipeline.contract.models import FILENAME_PATTERN
from export_pipeline.settings import DEFAULT_PREFIX  # the deployment default (EXPORT_PREFIX)


@dataclass(frozen=True)
class ExportLocation:
    """An export's object ``key`` in our bucket and the ``delivery_name`` of its file in a
    destination's folder, made from the same inputs."""

    key: str
    delivery_name: str


def _under(prefix: str, name: str) -> str:
    folder = prefix.strip("/")
    return f"{folder}/{name}" if folder else name


def _fixed_name(path: str, extension: str) -> str:
    return f"{path.strip('/')}.{extension}"


def export_location(
    request_id: str, created_at: datetime, run_id: str, prefix: str = DEFAULT_PREFIX,
    extension: str = "csv", filename: str | None = None,
) -> ExportLocation:
    """A new file per run: its key and its delivered name both carry the UTC timestamp and the
    run, so no run replaces another's file here or at a destination."""
    if not re.match(REQUEST_ID_PATTERN, request_id) or request_id in (".", ".."):
        raise ValueError(f"request id {request_id!r} cannot be part of an object key")
    if filename is not None and not re.match(FILENAME_PATTERN, filename):
        raise ValueError(f"file name {filename!r} cannot be part of an object key")
    stamp = created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    run_stamp = f"{stamp}_{run_id[:8]}"
    if filename is None:
        name = f"{run_stamp}.{extension}"
        delivered = f"{request_id}_{run_stamp}.{extension}"
    else:
        name = f"{run_stamp}/{filename}.{extension}"
        delivered = f"{request_id}_{run_stamp}_{filename}.{extension}"
    return ExportLocation(key=_under(prefix, f"{request_id}/{name}"), delivery_name=delivered)


def export_key(
    request_id: str, created_at: datetime, run_id: str, prefix: str = DEFAULT_PREFIX,
    extension: str = "csv", filename: str | None = None,
) -> str:
    return export_location(request_id, created_at, run_id, prefix, extension, filename).key


def fixed_export_location(
    path: str, request_id: str, prefix: str = DEFAULT_PREFIX, extension: str = "csv"
) -> ExportLocation:
    """A fixed key (``fixed_export_key``) and its delivered name,
    ``<request id>_<last segment of path>.<ext>``: the same on every run, like the key."""
    key = _under(prefix, _fixed_name(path, extension))
    return ExportLocation(key=key, delivery_name=named_after_key(request_id, key))


def named_after_key(request_id: str, key: str) -> str:
    """``<request id>_<last segment of key>``: a fixed key's delivered name, and the name any
    result stored without one (before names were carried) is delivered under."""
    return f"{request_id}_{posixpath.basename(key)}"


def fixed_export_key(path: str, prefix: str = DEFAULT_PREFIX, extension: str = "csv") -> str:
    """A saved export's partition file, ``<prefix>/<name>/<partition>.<ext>``: the same key on
    every run of the partition, so a re-run replaces it."""
    return _under(prefix, _fixed_name(path, extension))
