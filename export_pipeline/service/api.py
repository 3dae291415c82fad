"""What each call of the export service does, with no web framework and no Dagster: the
callers' keys, scopes, quotas and rate limits, validation, and the export records. The HTTP
layer (``app``) turns ``ApiError`` into a response; the runs that make the files and the
bucket that holds them are reached through the two small interfaces below.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from export_pipeline.contract.documents import decode_json_document
from export_pipeline.contract.envelope import unwrap
from export_pipeline.contract.problems import InvalidRequest, Problem
from export_pipeline.contract.validation import validate_document
from export_pipeline.destinations.host_tag import destination_host_tags
from export_pipeline.destinations.sealing import seal_for_run_config, sealed_secret_paths
from export_pipeline.inbox.requests import split_notification
from export_pipeline.notifications.messages import Notification, parse_notification
from export_pipeline.publishing.keys import fixed_export_key
from export_pipeline.saved_exports.definitions import SavedExport
from export_pipeline.service.exports import (
    ExportRecord,
    ListQuery,
    RunObservation,
    Status,
    apply,
    decode_cursor,
    encode_cursor,
    expires_at,
    resource,
)
from export_pipeline.service.limits import Limiter, RateLimiter, month_start, quota_retry_after
from export_pipeline.service.scopes import saved_export_problems, scope_problems
from export_pipeline.service.state import StateStore
from export_pipeline.service.tenants import Caller, TenantDirectory
from export_pipeline.store.source import StoreSchema

_log = logging.getLogger(__name__)
NAME_MAX, NOTES_MAX, TAG_MAX, TAGS_MAX = 100, 10_000, 50, 20
RESOURCE_FIELDS = ("name", "notes", "tags")
SAVED_FIELDS = {"savedExport", "start", "end", *RESOURCE_FIELDS}
PAGE_MAX = 500


class ApiError(Exception):
    """An answer other than success: the HTTP status, its JSON body and headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None):
        super().__init__(status, body)
        self.status, self.body, self.headers = status, body, dict(headers or {})


def _problems_body(problems: list[Problem], **extra: Any) -> dict[str, Any]:
    return {**extra, "errors": [{"path": p.path, "message": p.message} for p in problems]}


def invalid(problems: list[Problem]) -> ApiError:
    return ApiError(422, _problems_body(problems, reason="invalid_request"))


@dataclass(frozen=True)
class Launch:
    """One run to start: the request (credentials sealed), the file's path under the export
    prefix (``tenants/<tenant>/<export id>``), the export's name, its tags and notification."""

    document: Any
    file_path: str
    name: str
    tags: dict[str, str]
    notification: Notification | None = None
    branding: dict[str, str] | None = None


class ExportRuns(Protocol):
    """The runs that make the files (the Dagster instance, in ``orchestration.service_runs``)."""

    def launch(self, launch: Launch) -> str: ...
    def observe(self, run_ids: list[str]) -> dict[str, RunObservation]: ...
    def cancel(self, run_id: str) -> None: ...


class ExportFiles(Protocol):
    """The bucket the files land in. Both calls raise ``FilesUnavailable`` when the bucket
    cannot be reached."""

    def sign(self, bucket: str, key: str, expires_in: int) -> str: ...
    def delete(self, bucket: str, key: str) -> None: ...


class FilesUnavailable(RuntimeError):
    """The bucket could not be reached or refused the call (credentials gone or expired, S3
    down): the caller may try again, and nothing of the export was changed."""


def _files_unavailable(what: str) -> ApiError:
    return ApiError(503, {"reason": "unavailable",
                          "message": f"the export bucket cannot be reached to {what}; try again"},
                    {"Retry-After": "30"})


TENANT_TAG = "export_pipeline/tenant"
EXPORT_ID_TAG = "export_pipeline/export_id"
CREATED_BY_TAG = "export_pipeline/created_by"


@dataclass
class ExportService:
    tenants: TenantDirectory
    state: StateStore
    runs: ExportRuns
    files: ExportFiles
    bucket: str
    prefix: str
    url_ttl: int
    schema: Callable[[], StoreSchema]
    saved_exports: Callable[[], Mapping[str, SavedExport]]
    rate_limit: tuple[int, float] = (120, 60.0)
    monthly_quota: int = 1000
    page_size: int = 50
    retention: timedelta | None = None
    """How long export files are kept (``EXPORT_RETENTION_DAYS``); ``None``: for ever."""
    sealing_keys: str | None = None
    """The deployment's sealing keys (``EXPORT_SEALING_KEY``): inline credentials are sealed
    with them before a request becomes run config."""
    limiter: Limiter = field(default_factory=RateLimiter)
    """The tenants' rate limit buckets: ``state.rate_limiter()`` when the service is built."""
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)

    # -- who is calling ------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller of ``Authorization: Bearer <key>``; 401, 403 (inactive) or 429 (rate)."""
        scheme, _, key = (authorization or "").partition(" ")
        caller = self.tenants.authenticate(key.strip()) if scheme.lower() == "bearer" else None
        if caller is None:
            raise ApiError(401, {"reason": "unauthorized",
                                 "message": "send Authorization: Bearer <API key>"},
                           {"WWW-Authenticate": "Bearer"})
        if not caller.tenant.active:
            raise ApiError(403, {"reason": "subscription_required",
                                 "message": "this tenant has no active subscription"})
        limit = caller.tenant.rate_limit
        requests, seconds = (limit.requests, limit.per_seconds) if limit else self.rate_limit
        wait = self.limiter.retry_after(caller.tenant.name, requests, seconds)
        if wait:
            raise ApiError(429, {"reason": "rate_limited",
                                 "message": f"at most {requests} calls per {seconds:g} s"},
                           {"Retry-After": str(wait)})
        return caller

    # -- POST /v1/exports ----------------------------------------------------------------

    def create(self, caller: Caller, raw: bytes) -> dict[str, Any]:
        try:
            document = decode_json_document(raw, "the body")
        except InvalidRequest as error:
            raise invalid(error.problems) from None
        if not isinstance(document, dict):
            raise invalid([Problem("", "the body is a JSON object")])
        fields, field_problems = _resource_fields(document)
        rest = {k: v for k, v in document.items() if k not in RESOURCE_FIELDS}
        as_asked = list
        if "savedExport" in document:
            not_granted = saved_export_problems(document["savedExport"], caller.tenant)
            if not_granted:
                raise ApiError(403, _problems_body(not_granted, reason="out_of_scope"))
            request_document, notification, problems = self._saved_request(rest)
            if request_document is not None:  # the operator wrote it: named in the definition
                as_asked = self.saved_exports()[rest["savedExport"]].problems_as_asked
        else:
            request_document, notification, problems = self._request(rest)
        problems = field_problems + problems
        validated = None
        if request_document is not None:
            try:
                validated = validate_document(request_document, self.schema())
            except InvalidRequest as error:
                problems += as_asked(error.problems)
        if problems or validated is None:
            raise invalid(problems)
        prefix = unwrap(request_document).prefix
        out_of_scope = as_asked(scope_problems(validated.request, caller.tenant, prefix,
                                               rest.get("savedExport"), notification))
        if out_of_scope:
            raise ApiError(403, _problems_body(out_of_scope, reason="out_of_scope"))
        try:
            sealed = seal_for_run_config(request_document, self.sealing_keys)
        except ValueError as error:
            raise invalid([Problem("destinations", str(error))]) from None
        return self._start(caller, fields, validated.request, sealed, notification)

    def _request(self, rest: dict) -> tuple[Any, Notification | None, list[Problem]]:
        request_document, notification_document = split_notification(rest)
        # The service seals what a tenant sends; a sealed value from outside was sealed for
        # someone else (seen in a run's config), and is refused whatever it is bound to.
        problems = [
            Problem(path, "send the credential itself (over HTTPS): the service seals it, "
                          "and refuses values sealed elsewhere")
            for path in sealed_secret_paths(request_document)
        ]
        if notification_document is None:
            return request_document, None, problems
        notification, notification_problems = parse_notification(notification_document)
        return request_document, notification, problems + notification_problems

    def _saved_request(self, rest: dict) -> tuple[Any, Notification | None, list[Problem]]:
        problems = [Problem(k, "unknown field beside savedExport") for k in sorted(set(rest) - SAVED_FIELDS)]
        saved = self.saved_exports().get(rest["savedExport"]) if isinstance(rest["savedExport"], str) else None
        if saved is None:
            problems.append(Problem("savedExport", "no saved export of this name"))
        start, end = _instant(rest.get("start")), _instant(rest.get("end"))
        for name, value in (("start", start), ("end", end)):
            if value is None:
                problems.append(Problem(name, "required: an ISO 8601 instant with an offset"))
        if start and end and start >= end:
            problems.append(Problem("end", "must be after start"))
        if problems or saved is None:
            return None, None, problems
        return saved.request_for_window(start, end), saved.notification, []

    def _start(self, caller: Caller, fields: dict[str, Any], request: Any, sealed: Any,
               notification: Notification | None) -> dict[str, Any]:
        tenant = caller.tenant
        quota = tenant.monthly_quota if tenant.monthly_quota is not None else self.monthly_quota
        now = self.clock()
        export_id = str(uuid.uuid4())
        file_path = f"tenants/{tenant.name}/{export_id}"
        extension = request.format.extension.value
        record = ExportRecord(
            id=export_id, tenant=tenant.name, created=now, modified=now,
            created_by=caller.key_name, name=fields["name"] or f"Export {export_id[:8]}",
            notes=fields["notes"], tags=fields["tags"], format=extension, bucket=self.bucket,
            key=fixed_export_key(file_path, self.prefix, extension),
        )
        wait = quota_retry_after(self.state.insert_within_quota(record, month_start(now), quota), quota, now)
        if wait:
            raise ApiError(429, {"reason": "quota_exceeded",
                                 "message": f"{quota} exports per month are used up"},
                           {"Retry-After": str(wait)})
        tags = {TENANT_TAG: tenant.name, EXPORT_ID_TAG: export_id, CREATED_BY_TAG: caller.key_name,
                **destination_host_tags(request.deliveries())}
        try:
            branding = tenant.branding.model_dump(exclude_defaults=True) if tenant.branding else None
            record.run_id = self.runs.launch(
                Launch(sealed, file_path, record.name, tags, notification, branding or None)
            )
        except Exception:
            self.state.remove(tenant.name, export_id)
            _log.exception("could not launch the run of export %s", export_id)
            raise ApiError(503, {"reason": "unavailable",
                                 "message": "the export could not be started; try again"}) from None
        self.state.save(record)
        return resource(record)

    # -- GET -----------------------------------------------------------------------------

    def view(self, caller: Caller, export_id: str) -> dict[str, Any]:
        record = self._find(caller, export_id)
        progress = self._refresh(caller.tenant.name, [record]).get(record.id)
        return self._resource(record, progress)

    def list(self, caller: Caller, params: Mapping[str, str]) -> dict[str, Any]:
        query = self._list_query(params)
        tenant = caller.tenant.name
        progress = self._refresh(tenant, self.state.unfinished(tenant))
        self._settle_deleted(tenant)
        records = self.state.list(tenant, query)
        page, more = records[: query.limit], len(records) > query.limit
        return {
            "exports": [self._resource(r, progress.get(r.id)) for r in page],
            "next_cursor": encode_cursor(page[-1]) if more else None,
        }

    def _list_query(self, params: Mapping[str, str]) -> ListQuery:
        problems = [Problem(k, "unknown query parameter") for k in sorted(
            set(params) - {"status", "format", "tag", "created_after", "created_before", "limit", "cursor"}
        )]
        status = None
        if "status" in params:
            try:
                status = Status(params["status"])
            except ValueError:
                problems.append(Problem("status", f"one of {', '.join(s.value for s in Status)}"))
        fmt = params.get("format")
        if fmt is not None and fmt.lower() not in ("csv", "xlsx", "pdf"):
            problems.append(Problem("format", "one of csv, xlsx, pdf"))
        bounds = {}
        for name in ("created_after", "created_before"):
            if name in params:
                bounds[name] = _instant(params[name])
                if bounds[name] is None:
                    problems.append(Problem(name, "an ISO 8601 instant with an offset"))
        limit = self.page_size
        if "limit" in params:
            raw = params["limit"]
            limit = int(raw) if raw.isascii() and raw.isdigit() else 0
            if not 1 <= limit <= PAGE_MAX:
                problems.append(Problem("limit", f"an integer from 1 to {PAGE_MAX}"))
        after = None
        if "cursor" in params:
            after = decode_cursor(params["cursor"])
            if after is None:
                problems.append(Problem("cursor", "not a cursor this service gave out"))
        if problems:
            raise invalid(problems)
        return ListQuery(status=status, format=fmt.lower() if fmt else None, tag=params.get("tag"),
                         limit=limit, after=after, **bounds)

    def _find(self, caller: Caller, export_id: str) -> ExportRecord:
        """The caller's export; another tenant's id is answered exactly as a missing one."""
        record = self.state.get(caller.tenant.name, export_id)
        if record is None:
            raise ApiError(404, {"reason": "not_found", "message": "no such export"})
        return record

    def _refresh(self, tenant: str, records: list[ExportRecord]) -> dict[str, dict | None]:
        """Ask the runs of unfinished exports how they are; the progress of running ones."""
        pending = [r for r in records if not r.status.finished and r.run_id]
        if not pending:
            return {}
        seen = self.runs.observe([r.run_id for r in pending])
        progress = {}
        for record in pending:
            observation = seen.get(record.run_id)
            if observation is None:
                continue
            if apply(record, observation, self.clock()):
                self.state.save(record)
            progress[record.id] = observation.progress
        return progress

    def _resource(self, record: ExportRecord, progress: dict | None = None) -> dict[str, Any]:
        expiry = expires_at(record, self.retention)
        now = self.clock()
        expired = expiry is not None and now >= expiry
        url = None
        if record.status is Status.complete and not expired:
            # a URL does not outlive the file's retention
            ttl = self.url_ttl if expiry is None else min(
                self.url_ttl, math.ceil((expiry - now).total_seconds())
            )
            try:
                url = self.files.sign(record.bucket, record.key, ttl)
            except FilesUnavailable as error:
                _log.warning("could not sign the URL of export %s: %s", record.id, error)
                raise _files_unavailable("sign its download URL") from None
        return resource(record, url, progress, expiry, expired)

    # -- DELETE --------------------------------------------------------------------------

    def delete(self, caller: Caller, export_id: str) -> None:
        """Cancel the run if it has not finished, delete the file, forget the export."""
        record = self._find(caller, export_id)
        self._refresh(caller.tenant.name, [record])
        if not record.status.finished and record.run_id:
            self.runs.cancel(record.run_id)
        try:
            self.files.delete(record.bucket, record.key)
        except FilesUnavailable as error:
            _log.warning("could not delete the file of export %s: %s", record.id, error)
            raise _files_unavailable("delete its file") from None
        record.deleted = True
        record.modified = self.clock()
        self.state.save(record)

    def _settle_deleted(self, tenant: str) -> None:
        """A cancelled run may still have written its file as it stopped: delete it again
        once the run has finished."""
        records = self.state.unfinished(tenant, deleted=True)
        seen = self.runs.observe([r.run_id for r in records if r.run_id]) if records else {}
        for record in records:
            observation = seen.get(record.run_id or "")
            if observation is None or not observation.status.finished:
                continue
            try:
                self.files.delete(record.bucket, record.key)
            except FilesUnavailable as error:  # settled at a later call
                _log.warning("could not delete the file of deleted export %s: %s", record.id, error)
                continue
            record.status = observation.status
            self.state.save(record)


_LINE_BREAKS_ALLOWED = {"\n", "\t", "\r"}


def _control_characters(text: str, allowed: set[str] = frozenset()) -> bool:
    """Whether ``text`` holds a control character (a name or tag goes into run tags, headers
    and file metadata, where one could start a line of its own)."""
    return any((ord(c) < 32 or 127 <= ord(c) < 160) and c not in allowed for c in text)


def _resource_fields(document: dict) -> tuple[dict[str, Any], list[Problem]]:
    problems = []
    name, notes, tags = document.get("name"), document.get("notes", ""), document.get("tags", [])
    if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX):
        problems.append(Problem("name", f"a string of 1 to {NAME_MAX} characters"))
    elif name is not None and _control_characters(name):
        problems.append(Problem("name", "must not contain control characters"))
    if notes is None:
        notes = ""
    if not isinstance(notes, str) or len(notes) > NOTES_MAX:
        problems.append(Problem("notes", f"a string of at most {NOTES_MAX} characters"))
    elif _control_characters(notes, _LINE_BREAKS_ALLOWED):
        problems.append(Problem("notes", "must not contain control characters other than line breaks and tabs"))
    if not isinstance(tags, list) or len(tags) > TAGS_MAX:
        problems.append(Problem("tags", f"a list of at most {TAGS_MAX} strings"))
        tags = []
    for i, tag in enumerate(tags):
        if not isinstance(tag, str) or not 1 <= len(tag) <= TAG_MAX:
            problems.append(Problem(f"tags[{i}]", f"a string of 1 to {TAG_MAX} characters"))
        elif _control_characters(tag):
            problems.append(Problem(f"tags[{i}]", "must not contain control characters"))
    return {"name": name, "notes": notes, "tags": list(dict.fromkeys(tags))}, problems


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
        instant.astimezone(timezone.utc)  # year 1 at +14:00 has no UTC instant
    except (ValueError, OverflowError):
        return None
    return instant if instant.tzinfo is not None else None
