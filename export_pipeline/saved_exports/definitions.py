"""Saved export definitions: a request plus a name, a cadence and a timezone, kept as YAML or
JSON files in a folder. Each one is exported again for every period (partition) of its cadence.

The request's window is relative: ``metricRequests[].start``/``end`` are left out and each
partition fills them with its own window, ``[partition start, partition end)`` (the request's
``end`` is inclusive, so it is the partition end minus one microsecond). Seed 004's
``type: recurring`` + ISO 8601 ``periodicity`` + ``periodStart`` (a Unix timestamp) is accepted
in place of ``cadence`` + ``start``.
"""

from __future__ import annotations

import copy
import errno
import math
import os
import re
import stat
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from export_pipeline.notifications.messages import Notification, parse_notification
from export_pipeline.contract.documents import read_document
from export_pipeline.contract.envelope import moved_problems, unwrap, wrap
from export_pipeline.contract.models import EARLIEST_INSTANT, LATEST_INSTANT, SUPPORTED_INSTANTS
from export_pipeline.contract.problems import InvalidRequest, Problem, problems_from
from export_pipeline.contract.validation import validate_document

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
SUFFIXES = (".yaml", ".yml", ".json")
END_OFFSET = timedelta(microseconds=1)


class Cadence(str, Enum):
    hourly = "hourly"
    daily = "daily"
    weekly = "weekly"  # ISO weeks, Monday to Sunday, like the `week` aggregation period
    monthly = "monthly"


PERIODICITIES = {
    "PT1H": Cadence.hourly, "PT60M": Cadence.hourly,
    "P1D": Cadence.daily, "PT24H": Cadence.daily,
    "P1W": Cadence.weekly, "P7D": Cadence.weekly,
    "P1M": Cadence.monthly,
}


class _Definition(BaseModel):
    """The file as written; ``SavedExport`` is what it means."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    name: str
    description: str = ""
    cadence: Cadence | None = None
    start: datetime | date | None = None
    type: str | None = None
    periodicity: str | None = None
    period_start: int | float | None = None
    timezone: str = "UTC"
    enabled: bool = True
    request: dict[str, Any]
    notification: dict[str, Any] | None = None

    @field_validator("start", mode="before")
    @classmethod
    def _date_or_wall_clock(cls, value: Any) -> Any:
        """A date or an ISO 8601 time, read as written: a number is not taken for a Unix
        timestamp (that is ``periodStart``), and an offset is kept even at midnight (a date
        would win the union and drop it)."""
        if value is None or isinstance(value, (date, datetime)):
            return value
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                pass
        raise ValueError(
            "must be a date or a wall-clock time, e.g. 2024-04-01 or 2024-04-01T06:00 "
            "(a Unix timestamp goes in periodStart)"
        )

    @field_validator("period_start", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):  # `true` would otherwise be the second 1 of 1970
            raise ValueError("must be a Unix timestamp, in seconds")
        return value

    @field_validator("period_start")
    @classmethod
    def _finite(cls, value: int | float | None) -> int | float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a Unix timestamp, in seconds")
        return value


class SavedExport(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    cadence: Cadence
    start: datetime  # naive: a wall-clock time in ``timezone``
    timezone: str
    enabled: bool
    body: dict[str, Any]
    notification: Notification | None
    source: str
    body_path: str = "request."
    """Where the body's fields sit in the definition file (``request.``, or
    ``request.data.body.`` when it wrote an envelope): a period's request is checked again as it
    runs, and its problems are named there, not in the envelope ``request_for_window`` makes."""

    @property
    def job_name(self) -> str:
        return "saved_export_" + self.name.replace("-", "_")

    def problems_as_asked(self, problems: list[Problem]) -> list[Problem]:
        """Problems of a window's request (``request_for_window``) as whoever asked for the
        window reads them (the API's ``{savedExport, start, end}``): all at ``savedExport``,
        since they did not write the request, each naming its place in the definition."""
        return [
            Problem("savedExport", f"{self.name!r} over this window: {p}")
            for p in moved_problems(problems, self.body_path)
        ]

    def request_for_window(self, start: datetime, end: datetime) -> dict[str, Any]:
        """The export request (an envelope whose id is the definition's name) for the window
        ``start <= t < end``."""
        body = copy.deepcopy(self.body)
        # Buckets are cut in the definition's timezone unless the request says otherwise, so a
        # daily partition is one local day and one row per entity, not two partial UTC dates.
        output = body.get("format")
        if output is None or isinstance(output, str):
            body["format"] = {"extension": output or "csv", "timezone": self.timezone}
        elif isinstance(output, dict):
            output.setdefault("timezone", self.timezone)
        for metric_request in body.get("metricRequests") or []:
            if isinstance(metric_request, dict):
                metric_request["start"] = _utc_iso(start)
                # in UTC first: arithmetic on zoned datetimes is wall-clock arithmetic, which is
                # wrong across a DST change (02:00 CET minus 1 us is not 01:59:59 CET)
                metric_request["end"] = _utc_iso(end.astimezone(timezone.utc) - END_OFFSET)
        return wrap(body, self.name)


def _utc_iso(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_saved_export(document: Any, source: str = "<definition>") -> SavedExport:
    """The saved export in ``document``, or ``InvalidRequest`` naming every problem."""
    if not isinstance(document, dict):
        raise InvalidRequest([Problem("", "a saved export definition is a JSON/YAML object")])
    problems: list[Problem] = []
    try:
        raw = _Definition.model_validate(document)
    except ValidationError as error:
        problems = problems_from(error)
        # go on without the fields in error, so the other fields' problems are reported too
        bad = {e["loc"][0] for e in error.errors() if e["loc"]}
        rest = {k: v for k, v in document.items() if k not in bad}
        rest.setdefault("name", "invalid")
        rest.setdefault("request", {})  # reported; its own checks are skipped below
        if "cadence" in bad:  # reported; a stand-in that contradicts nothing else
            periodicity = str(rest.get("periodicity", "")).upper()
            rest["cadence"] = PERIODICITIES.get(periodicity, Cadence.daily).value
        try:
            raw = _Definition.model_validate(rest)
        except ValidationError:
            raise InvalidRequest(problems) from None
    if not re.fullmatch(NAME_PATTERN, raw.name):  # `$` alone lets a trailing newline through
        problems.append(Problem(
            "name", "must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit"
        ))
    reported = {p.path.split(".")[0].split("[")[0] for p in problems}
    cadence, start = _cadence_and_start(raw, problems, reported)
    try:
        ZoneInfo(raw.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(Problem("timezone", f"{raw.timezone!r} is not an IANA timezone (e.g. Europe/Berlin)"))
    body, prefix = (None, "") if "request" in reported else _body(raw.request, problems)
    if body is not None:
        for i, metric_request in enumerate(body.get("metricRequests") or []):
            for key in ("start", "end"):
                if isinstance(metric_request, dict) and key in metric_request:
                    problems.append(Problem(
                        f"{prefix}metricRequests[{i}].{key}",
                        "leave it out: each partition's window sets start and end",
                    ))
    notification = None
    if raw.notification is not None:
        notification, notification_problems = parse_notification(raw.notification)
        problems += notification_problems
    if body is not None:
        problems += _request_problems(body, prefix, cadence)
    if problems:
        raise InvalidRequest(problems)
    saved = SavedExport(
        name=raw.name, description=raw.description, cadence=cadence, start=start,
        timezone=raw.timezone, enabled=raw.enabled, body=body, notification=notification,
        source=source, body_path=prefix,
    )
    return saved


# The longest partition of each cadence (a day or week across a daylight-saving change, a
# 31-day month), so a definition whose partitions would exceed the cost limits is refused
# when it is loaded, not on the day its longest partition runs.
_LONGEST_PARTITION = {
    Cadence.hourly: timedelta(hours=1),
    Cadence.daily: timedelta(hours=25),
    Cadence.weekly: timedelta(days=7, hours=1),
    Cadence.monthly: timedelta(days=31, hours=1),
}


def _request_problems(body: dict, prefix: str, cadence: Cadence) -> list[Problem]:
    """The request's own rules and cost limits, checked with a sample window as long as the
    cadence's longest partition in place of the partition's."""
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    sample = SavedExport.model_construct(name="sample", body=body, timezone="UTC").request_for_window(
        start, start + _LONGEST_PARTITION[cadence]
    )
    try:
        validate_document(sample)
    except InvalidRequest as error:
        return moved_problems(error.problems, prefix)
    return []


def _cadence_and_start(
    raw: _Definition, problems: list[Problem], reported: set[str] = frozenset()
) -> tuple[Cadence, datetime]:
    cadence = raw.cadence
    if raw.type is not None and raw.type != "recurring":
        problems.append(Problem("type", f"a saved export is 'recurring', not {raw.type!r}"))
    if raw.periodicity is not None:
        mapped = PERIODICITIES.get(raw.periodicity.upper())
        if mapped is None:
            problems.append(Problem(
                "periodicity",
                f"{raw.periodicity!r} is not a supported period: PT1H (hourly), P1D (daily), "
                "P1W or P7D (weekly), P1M (monthly)",
            ))
        elif cadence is not None and cadence is not mapped:
            problems.append(Problem("periodicity", f"contradicts cadence {cadence.value!r}"))
        cadence = cadence or mapped
    if cadence is None and raw.periodicity is None and not reported & {"cadence", "periodicity"}:
        problems.append(Problem("cadence", "required: hourly, daily, weekly or monthly (or periodicity)"))
    start: datetime | None = None
    if raw.start is not None and raw.period_start is not None:
        problems.append(Problem("periodStart", "give start or periodStart, not both"))
    if raw.start is not None:
        start = raw.start if isinstance(raw.start, datetime) else datetime.combine(raw.start, datetime.min.time())
        if start.tzinfo is not None:
            start = _wall_clock(start, raw.timezone)
    elif raw.period_start is not None:
        if EARLIEST_INSTANT.timestamp() <= raw.period_start < LATEST_INSTANT.timestamp():
            start = _wall_clock(datetime.fromtimestamp(raw.period_start, timezone.utc), raw.timezone)
        else:
            problems.append(Problem("periodStart", f"is outside the supported instants, {SUPPORTED_INSTANTS}"))
    elif not reported & {"start", "periodStart"}:
        problems.append(Problem("start", "required: the first period, e.g. 2024-04-01 (or periodStart)"))
    # the partitions are counted from it: beyond the calendar's ends, Dagster's arithmetic overflows
    if raw.start is not None and start is not None and not (
        EARLIEST_INSTANT.replace(tzinfo=None) <= start < LATEST_INSTANT.replace(tzinfo=None)
    ):
        problems.append(Problem("start", f"is outside the supported instants, {SUPPORTED_INSTANTS}"))
        start = None
    return cadence or Cadence.daily, start or datetime(1970, 1, 1)


def _wall_clock(instant: datetime, tz: str) -> datetime:
    try:
        return instant.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    except (ZoneInfoNotFoundError, ValueError):
        return instant.replace(tzinfo=None)


def _body(request: dict, problems: list[Problem]) -> tuple[dict | None, str]:
    """The request's body and the path of its fields; the envelope's own problems (its id is
    the definition's name, so ``data.id`` is not one of them)."""
    envelope = unwrap(request)
    problems += [Problem(f"request.{p.path}", p.message) for p in envelope.problems]
    return envelope.body, f"request.{envelope.prefix}"


def _link_problem(path: Path) -> str | None:
    """Why ``path``, named like a definition, is a link that reaches no file, or None. A
    deploy that breaks leaves links whose targets are gone; skipped, they would drop a saved
    export and its schedule unseen. A link to a file is read wherever the file is (the
    operator owns what the folder links to)."""
    if not path.is_symlink():
        return None
    target = os.readlink(path)
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"is a link to {target}, in a loop of links that never reaches a file"
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            via = f" (and on to {os.path.realpath(path)})" if (path.parent / target).is_symlink() else ""
            return f"is a link to {target}{via}, which does not exist"
        return f"is a link to {target}, which cannot be read: {error.strerror}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return f"is a link to {target}, a folder: links to folders are not followed"
    return f"is a link to {target}, which is not a file"


def _hidden(relative: Path) -> bool:
    """Whether a name on the way to the file starts with a dot. Such files are not definitions:
    a Kubernetes ConfigMap mounts each file as a link into its own ``..<timestamp>/`` folder
    (read too, every definition would come twice), and an editor's lock on ``daily.yaml`` is a
    link named ``.#daily.yaml`` to nowhere."""
    return any(part.startswith(".") for part in relative.parts)


def load_saved_exports(folder: str | Path) -> list[SavedExport]:
    """Every definition under ``folder`` (``*.yaml``, ``*.yml``, ``*.json``, recursively, names
    starting with a dot left out), sorted by file name. Problems in any file are all reported
    at once, each prefixed by its file; a link that reaches no file is one of them."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidRequest([Problem("", f"EXPORT_DEFINITIONS_PATH {root} is not a folder")])
    saved: list[SavedExport] = []
    problems: list[Problem] = []
    names: dict[str, str] = {}
    named = (
        p for p in root.rglob("*")
        if p.suffix.lower() in SUFFIXES and not _hidden(p.relative_to(root))
    )
    for path in sorted(p for p in named if p.is_symlink() or p.is_file()):
        where = str(path.relative_to(root))
        unreadable = _link_problem(path)
        if unreadable:
            problems.append(Problem(where, unreadable))
            continue
        try:
            item = parse_saved_export(read_document(str(path), "the file"), where)
        except InvalidRequest as error:
            problems += [Problem(f"{where}: {p.path}" if p.path else where, p.message) for p in error.problems]
            continue
        job_name = item.job_name
        if job_name in names:
            problems.append(Problem(f"{where}: name", f"{item.name!r} is already used by {names[job_name]}"))
            continue
        names[job_name] = where
        saved.append(item)
    if problems:
        raise InvalidRequest(problems)
    return saved
