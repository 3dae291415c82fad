"""The request inbox: clients drop request files under a prefix of a bucket and poll a result
object beside it. No Dagster in here: listing, run keys, the cursor and the result documents.

Bounded work per tick. S3 lists keys in lexical order, so a cursor that only remembered the last
key would never see a file added under an earlier name, nor a file changed in place. The inbox
is therefore read in *passes*: each tick lists on from the cursor's key, at most a fixed number
of keys, and wraps around at the end. An object is a candidate when it was modified since the
previous pass started (minus a margin for clock skew), and a small set of recently handled
``key@etag`` run keys keeps a candidate from being handled twice; that set only holds objects
newer than the watermark, so it stays as small as the recent inflow. Old files cost one listed
key per pass and nothing else.

One file, one result: a file's result lies at its own path under the results prefix, so no
file can overwrite another's result, whatever request id it claims.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from export_pipeline.contract.envelope import unwrap
from export_pipeline.contract.problems import Problem
from export_pipeline.contract.response import response_body

REQUEST_SUFFIXES = (".json", ".yaml", ".yml")
CLOCK_MARGIN_SECONDS = 300.0
LIST_PAGE = 1000
MAX_KEY_BYTES = 1024  # the longest key S3 stores


class Status:
    queued = "queued"
    running = "running"
    complete = "complete"
    failed = "failed"
    terminal = ("complete", "failed")


@dataclass(frozen=True)
class InboxFile:
    key: str
    etag: str
    last_modified: float  # epoch seconds
    size: int

    @property
    def run_key(self) -> str:
        """Same key and content, same run key: re-uploading an identical file is a no-op."""
        return f"{self.key}@{self.etag}"

    @property
    def seen_key(self) -> str:
        """The run key, shortened for the cursor (a burst of thousands of files stays small)."""
        return hashlib.sha1(self.run_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class InboxCursor:
    after: str = ""  # resume listing after this key ("" = the start of a pass)
    since: float = 0.0  # candidates: modified at or after this (epoch seconds)
    pass_started: float = 0.0
    seen: dict[str, float] = field(default_factory=dict)  # seen key -> last modified

    def to_json(self) -> str:
        return json.dumps(
            {"after": self.after, "since": self.since, "passStarted": self.pass_started, "seen": self.seen},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None, now: float) -> InboxCursor:
        if not text:
            return cls(pass_started=now)
        data = json.loads(text)
        return cls(
            after=data.get("after", ""), since=data.get("since", 0.0),
            pass_started=data.get("passStarted", now), seen=dict(data.get("seen", {})),
        )

    def mark(self, item: InboxFile) -> InboxCursor:
        return replace(self, seen={**self.seen, item.seen_key: item.last_modified})


@dataclass(frozen=True)
class Scan:
    candidates: list[InboxFile]
    cursor: InboxCursor  # where the next tick goes on once every candidate is handled
    listed: int
    pass_completed: bool


def scan(
    client: Any, bucket: str, prefix: str, cursor: InboxCursor, now: float,
    max_listed: int = 10_000, max_candidates: int = 50, exclude_prefix: str | None = None,
    deadline: float | None = None, page_size: int = LIST_PAGE,
) -> Scan:
    """List on from ``cursor``: at most ``max_listed`` keys, at most ``max_candidates`` of them
    new or changed request files, and no further page once ``time.monotonic()`` has passed
    ``deadline`` (the first page is always listed, so every tick moves on). Keys under
    ``exclude_prefix`` (the results, should they lie inside the inbox) are never requests."""
    after = cursor.after
    candidates: list[InboxFile] = []
    listed = 0
    pages = 0
    completed = False
    full = False
    while not full and not completed and listed < max_listed:
        if pages and deadline is not None and time.monotonic() > deadline:
            break
        pages += 1
        kwargs = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": min(page_size, max_listed - listed)}
        if after:
            kwargs["StartAfter"] = after
        page = client.list_objects_v2(**kwargs)
        contents = page.get("Contents", [])
        more = bool(page.get("IsTruncated"))
        for i, obj in enumerate(contents):
            after = obj["Key"]
            listed += 1
            item = InboxFile(
                key=obj["Key"], etag=obj["ETag"].strip('"'),
                last_modified=obj["LastModified"].timestamp(), size=obj.get("Size", 0),
            )
            if (
                item.key.lower().endswith(REQUEST_SUFFIXES)
                and not (exclude_prefix and item.key.startswith(exclude_prefix))
                and item.last_modified >= cursor.since
                and item.seen_key not in cursor.seen
            ):
                candidates.append(item)
                if len(candidates) >= max_candidates:
                    full = True
                    more = more or i < len(contents) - 1
                    break
        completed = not more
    if completed:
        since = cursor.pass_started - CLOCK_MARGIN_SECONDS
        next_cursor = InboxCursor(
            after="", since=since, pass_started=now,
            seen={k: t for k, t in cursor.seen.items() if t >= since},
        )
    else:
        next_cursor = replace(cursor, after=after)
    return Scan(candidates=candidates, cursor=next_cursor, listed=listed, pass_completed=completed)


def request_id_for(key: str, prefix: str, document: Any) -> str:
    """The envelope's ``data.id`` when it has a valid one, else the file's path under the
    inbox without its extension (``requests/team/april.json`` -> ``team.april``)."""
    return unwrap(document).request_id or id_from_key(key, prefix)


def id_from_key(key: str, prefix: str) -> str:
    relative = key[len(prefix):] if key.startswith(prefix) else key
    stem = re.sub(r"\.(json|ya?ml)$", "", relative, flags=re.IGNORECASE)
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", stem.replace("/", ".")).strip(".-_")
    return cleaned[:128] or "request"


def split_notification(document: Any) -> tuple[Any, Any]:
    """An inbox file may carry a ``notification`` beside the request; the request
    itself is everything else."""
    if isinstance(document, dict) and "notification" in document:
        rest = {k: v for k, v in document.items() if k != "notification"}
        return rest, document["notification"]
    return document, None


def result_key(results_prefix: str, prefix: str, key: str) -> str | None:
    """Where the result of the request file ``key`` lies: the file's path under the inbox, under
    the results prefix instead (``requests/team/april.json`` -> ``results/team/april.json``).
    Distinct files have distinct paths, so they never share a result; None when that key would
    be longer than S3 stores."""
    relative = key[len(prefix):] if key.startswith(prefix) else key
    result = f"{results_prefix}{relative}"
    return result if len(result.encode()) <= MAX_KEY_BYTES else None


def unexpected_problem(error: BaseException) -> Problem:
    """A plain reason for a file whose handling raised where no rule foresaw it. Only the kind
    of error reaches the client; its text (which may quote internals) stays in the sensor log."""
    if isinstance(error, RecursionError):
        reason = "it is nested too deeply"
    elif isinstance(error, OverflowError):
        reason = "a number or date in it is out of range"
    elif isinstance(error, UnicodeError):
        reason = "it is not UTF-8 text"
    else:
        reason = f"handling it failed unexpectedly ({type(error).__name__})"
    return Problem("", f"the request file cannot be handled: {reason}")


TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestLimitExceeded"}


def is_transient(error: BotoCoreError | ClientError) -> bool:
    """An S3 error worth retrying next tick (the store is unreachable or busy), as opposed to
    one about this object (denied, archived, key too long), which retrying cannot cure."""
    if isinstance(error, BotoCoreError):
        return True
    response = error.response or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return status >= 500 or status == 429 or response.get("Error", {}).get("Code") in TRANSIENT_CODES


def result_document(
    request_id: str,
    status: str,
    *,
    source: InboxFile | None = None,
    bucket: str | None = None,
    run_id: str | None = None,
    response: dict | None = None,
    errors: list[Problem] | list[dict] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """What a client polls: the export resource's status workflow with the export response body.

    ``body`` (``bucket``, ``key``, ``signedUrl``), ``rows`` and ``bytes`` are set when the
    export is ``complete``; ``errors`` (each with a JSON ``path`` when it is about the request)
    when it ``failed``.
    """
    document: dict[str, Any] = {
        "id": request_id,
        "status": status,
        "modified": (now or datetime.now(timezone.utc)).isoformat(),
        "runId": run_id,
        "request": {"bucket": bucket, "key": source.key, "etag": source.etag} if source else None,
        "errors": None,
        "rows": None,
        "bytes": None,
        "body": None,
    }
    if response is not None:
        document["body"] = response_body(response)
        document["rows"] = response["rows"]
        document["bytes"] = response["bytes"]
    if errors is not None:
        document["errors"] = [
            {"path": e.path, "message": e.message} if isinstance(e, Problem) else e for e in errors
        ]
    return document


def result_is_settled(current: dict | None, etag: str, run_id: str) -> bool:
    """Whether a run must leave the result ``current`` as it is: its file changed since (the
    newer file's run owns the result), or this run's final status is written already. The run
    itself and its status sensors all write the result, in any order, so none may step back
    from a final status."""
    if current is None:
        return False
    source = current.get("request") or {}
    if source.get("etag") not in (None, etag):
        return True
    return current.get("runId") == run_id and current.get("status") in Status.terminal


def put_result(client: Any, bucket: str, key: str, document: dict) -> None:
    client.put_object(
        Bucket=bucket, Key=key, Body=json.dumps(document, indent=2).encode(),
        ContentType="application/json", CacheControl="no-store",
    )


def get_result(client: Any, bucket: str, key: str) -> dict | None:
    try:
        return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    except client.exceptions.NoSuchKey:
        return None
