"""The rules for ``destination`` and ``destinations``: the fields each type needs and takes,
names that cannot be valid (hosts, buckets, regions, saved keys) and the path rules.

``destination.path`` is a folder, or for S3 possibly the object key itself. A leading or a
single trailing slash is accepted (S3 and GCS keys drop them); a doubled slash, a ``.`` or
``..`` segment, a backslash or a control character is refused, so a request can neither
produce a key with an empty segment nor climb out of a folder.
"""

from __future__ import annotations

import ipaddress
import re

from export_pipeline.contract.envelope import REQUEST_ID_PATTERN
from export_pipeline.contract.problems import Problem
from export_pipeline.contract.walk import items as _items

MAX_PATH_LENGTH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def path_problems(path: str) -> list[str]:
    """Why ``path`` is not acceptable (empty when it is)."""
    problems = []
    if len(path) > MAX_PATH_LENGTH:
        problems.append(f"must be at most {MAX_PATH_LENGTH} characters")
    if "//" in path:
        problems.append("must not contain a doubled slash ('//')")
    if "\\" in path:
        problems.append("must use '/' as the separator, not '\\'")
    if _CONTROL.search(path):
        problems.append("must not contain control characters")
    if any(segment in (".", "..") for segment in path.split("/")):
        problems.append("must not contain '.' or '..' segments")
    return problems


# Seed 003's destinations: which fields each type needs and takes.
_DESTINATION_FIELDS = {
    "aws": ((), ()),
    "s3": (
        ("aws_access_key_id", "aws_secret_access_key", "aws_bucket", "aws_region"), ("path",)
    ),
    "sftp": (("server", "username"), ("port", "password", "savedKey", "path")),
    "ftp": (("server", "username", "password"), ("port", "path")),
    "ftps": (("server", "username", "password"), ("port", "path")),
    "gcs": (("gcs_bucket",), ("path",)),
}
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
_KEY_NAME = re.compile(REQUEST_ID_PATTERN)


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(_HOST_NAME.match(value)) and not value.replace(".", "").isdigit()


def destination_problems(body: dict, prefix: str) -> list[Problem]:
    """Seed 003's rules for ``destination`` (and the ``destinations`` list): the fields each
    type needs, fields it does not use, names that cannot be valid, and the path rules.
    Messages never repeat a credential's value."""
    problems: list[Problem] = []
    if "destination" in body and "destinations" in body:
        problems.append(Problem(
            f"{prefix}destinations", "give either destination or destinations, not both"
        ))
    found: list[tuple[str, dict]] = []
    if isinstance(body.get("destination"), dict):
        found.append((f"{prefix}destination", body["destination"]))
    for i, item in _items(body.get("destinations")):
        found.append((f"{prefix}destinations[{i}]", item))

    seen: dict[tuple, str] = {}
    for dp, destination in found:
        kind = destination.get("type", "aws")
        if not isinstance(kind, str) or kind.lower() not in _DESTINATION_FIELDS:
            continue  # the model reports the type itself
        kind = kind.lower()
        required, optional = _DESTINATION_FIELDS[kind]
        for name in required:
            if destination.get(name) in (None, ""):
                problems.append(Problem(f"{dp}.{name}", f"required for type {kind!r}"))
        known = {"type", *required, *optional}
        for name in destination:
            if name not in known and name in _ALL_DESTINATION_FIELDS:
                problems.append(Problem(f"{dp}.{name}", f"not used by type {kind!r}"))
        if kind == "sftp" and destination.get("password") is None and destination.get("savedKey") is None:
            problems.append(Problem(
                f"{dp}.password", "type 'sftp' needs a password or a savedKey (a named key)"
            ))
        server = destination.get("server")
        if isinstance(server, str) and server and not _is_host(server):
            problems.append(Problem(
                f"{dp}.server", "must be a host name or IP address, without scheme, port or path"
            ))
        for name, pattern, what in (
            ("aws_bucket", _S3_BUCKET, "an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-')"),
            ("gcs_bucket", _GCS_BUCKET, "a GCS bucket name (lower-case letters, digits, '.', '_', '-')"),
            ("aws_region", _AWS_REGION, "an AWS region such as us-west-2"),
            ("savedKey", _KEY_NAME, "the name of a saved key (letters, digits, '.', '_', '-')"),
        ):
            value = destination.get(name)
            if name in known and isinstance(value, str) and value and not pattern.match(value):
                problems.append(Problem(f"{dp}.{name}", f"{value!r} is not {what}"))
        path = destination.get("path")
        if isinstance(path, str):
            problems += [Problem(f"{dp}.path", reason) for reason in path_problems(path)]
        if kind != "aws":
            identity = (kind, destination.get("server"), destination.get("port"),
                        destination.get("aws_bucket"), destination.get("gcs_bucket"),
                        (path or "").strip("/") if isinstance(path, str) else None)
            if identity in seen:
                problems.append(Problem(dp, f"delivers to the same place as {seen[identity]}"))
            seen.setdefault(identity, dp)
    return problems


_ALL_DESTINATION_FIELDS = {
    name for required, optional in _DESTINATION_FIELDS.values() for name in (*required, *optional)
}
