"""Where an export's file lands: ``<prefix>/<request id>/<UTC timestamp>_<run>.csv``.

Request ids are restricted to ``[A-Za-z0-9._-]`` (see ``request``), so nothing in a request
can steer a key outside its prefix. The run id suffix keeps two exports of the same request
in the same second from overwriting each other.
"""

from __future__ import annotations

from datetime import datetime, timezone

DEFAULT_PREFIX = "exports"


def export_key(
    request_id: str, created_at: datetime, run_id: str, prefix: str = DEFAULT_PREFIX,
    extension: str = "csv",
) -> str:
    stamp = created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    folder = prefix.strip("/")
    return f"{folder}/{request_id}/{stamp}_{run_id[:8]}.{extension}"


def fixed_export_key(path: str, prefix: str = DEFAULT_PREFIX, extension: str = "csv") -> str:
    """A saved export's partition file, ``<prefix>/<name>/<partition>.<ext>``: the same key on
    every run of the partition, so a re-run replaces it."""
    return f"{prefix.strip('/')}/{path.strip('/')}.{extension}"
