"""The request envelope: ``{"action": "external-service", "data": {"id", "route", "body"}}``.

A request is its body (``csvFormat`` + ``metricRequests``) or the body in this envelope, whose
``data.id`` names the request. This is the one place that tells them apart and reads the
envelope; everyone else asks ``unwrap``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from export_pipeline.contract.problems import Problem, kind

ACTION = "external-service"
ROUTE = "external-service/csv-generator"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
BODY_PATH = "data.body"


def moved_path(path: str, prefix: str) -> str:
    """Where ``path``, a path in a body this service wrapped itself (``wrap``), is in the
    document the user wrote, whose body fields sit at ``prefix`` (``""``, ``"request."``,
    ``"request.data.body."``): the user never saw the envelope, so ``data.body.`` would name a
    place they cannot find. A path outside the body (the envelope's own) is left as it is."""
    if path == BODY_PATH:
        return prefix.rstrip(".")
    if path.startswith(f"{BODY_PATH}."):
        return prefix + path[len(BODY_PATH) + 1:]
    return path


def moved_problems(problems: Iterable[Problem], prefix: str) -> list[Problem]:
    """``problems`` of a body this service wrapped, at their paths in the document the user
    wrote (``moved_path``)."""
    return [Problem(moved_path(p.path, prefix), p.message) for p in problems]


@dataclass(frozen=True)
class Envelope:
    """A document taken apart: the body (None when there is none to check), the JSON path
    prefix of the body's fields (``""`` or ``"data.body."``), the request id when the envelope
    names a valid one, and what is wrong with the envelope itself."""

    body: dict | None
    prefix: str = ""
    request_id: str | None = None
    problems: list[Problem] = field(default_factory=list)


def is_request_id(value: Any) -> bool:
    return isinstance(value, str) and re.match(REQUEST_ID_PATTERN, value) is not None


def unwrap(document: Any) -> Envelope:
    """Find the body; the envelope is optional (a document with ``csvFormat`` is a body)."""
    if not isinstance(document, dict):
        return Envelope(None, problems=[Problem("", f"a request is a JSON object, not {kind(document)}")])
    if "data" not in document or "csvFormat" in document:
        return Envelope(document)
    problems = []
    data = document["data"]
    if not isinstance(data, dict):
        return Envelope(None, problems=[Problem("data", f"must be an object, not {kind(data)}")])
    for key in sorted(set(document) - {"action", "data"}):
        problems.append(Problem(key, "unknown field in the request envelope"))
    if "action" in document and document["action"] != ACTION:
        problems.append(Problem(
            "action", f"this service answers {ACTION!r}, not {document['action']!r}"
        ))
    for key in sorted(set(data) - {"id", "route", "body"}):
        problems.append(Problem(f"data.{key}", "unknown field in the request envelope"))
    request_id = data.get("id")
    if request_id is not None and not is_request_id(request_id):
        problems.append(Problem(
            "data.id",
            "must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
        request_id = None
    route = data.get("route")
    if route is not None and route != ROUTE:
        problems.append(Problem("data.route", f"this service answers {ROUTE!r}, not {route!r}"))
    body = data.get("body")
    if not isinstance(body, dict):
        problems.append(Problem(BODY_PATH, "required: the request body (csvFormat + metricRequests)"))
        body = None
    return Envelope(body, f"{BODY_PATH}.", request_id, problems)


def wrap(body: dict, request_id: str) -> dict[str, Any]:
    """``body`` in an envelope that names it ``request_id``."""
    return {"action": ACTION, "data": {"id": request_id, "route": ROUTE, "body": body}}
