"""What is wrong with a request, and how a pydantic error becomes that.

A ``Problem`` names a JSON path into the submitted document and says why; ``InvalidRequest``
carries every problem found. Every model the service reads from a user (the request, a saved
export definition, a notification) reports through ``problems_from`` so a path and a message
read the same wherever they come from.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pydantic import ValidationError


class Problem(NamedTuple):
    """One thing wrong with a request: where (a JSON path into the submitted document) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidRequest(ValueError):
    """A request that must not run; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def problems_from(error: ValidationError, prefix: str = "") -> list[Problem]:
    """Each error of ``error`` as a Problem; ``prefix`` is the path of the validated object
    (``""``, ``"data.body."``, ``"notification.messages[0]."``)."""
    return [from_pydantic(e, prefix) for e in error.errors()]


_PYDANTIC_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "too_short": "must not be empty",
}


def from_pydantic(error: dict, prefix: str) -> Problem:
    loc = error["loc"]
    path = prefix + _json_path(loc)
    message = _PYDANTIC_MESSAGES.get(error["type"], error["msg"])
    if error["type"] == "enum":
        message = f"{error['input']!r} is not one of {error['ctx']['expected']}"
    elif error["type"] == "value_error":
        message = str(error["ctx"]["error"])
    elif error["type"] == "int_type":
        message = "must be an integer"
    elif error["type"] == "string_pattern_mismatch" and loc[-1] == "filename":
        message = (
            "may hold only letters, digits, '-' and '_' (1 to 100, starting with a letter or "
            "digit); the extension is added from the format"
        )
    elif any(_is_type_tag(part) for part in loc):
        # A union (a filter value) reports one error per member; say once what it takes.
        message = "must be a string or a non-empty list of strings"
    return Problem(path.rstrip("."), message)


def _is_type_tag(part: object) -> bool:
    """pydantic puts the union member's type (``list[constrained-str]``) into error paths."""
    return isinstance(part, str) and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part)


def _json_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_type_tag(part):
            out += f".{part}" if out else str(part)
    return out


def kind(value: object) -> str:
    """What a JSON value is, for a message (``an array``, ``a string``…)."""
    return {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )
