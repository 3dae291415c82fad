"""Notification messages: who is told what, on success or on failure, and their templates.

A message's ``title`` and ``text`` are templates: ``{{name}}`` is replaced by the export's
value. Which names exist depends on the policy: a failed export has no file (no ``signedUrl``,
``rows``…) and a successful one has no ``error``, so a template that uses one where it cannot
be filled is refused when the definition is loaded, not discovered when an export fails.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from export_pipeline.contract.problems import Problem, problems_from

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

COMMON_FIELDS = ("name", "window", "runId", "partition", "status")
SUCCESS_FIELDS = ("rows", "bytes", "signedUrl", "bucket", "key")
FAILURE_FIELDS = ("error",)


class Policy(str, Enum):
    """When a message is sent. ``onFailure`` covers a canceled run too (in the UI, by the API's
    delete): whoever waits to hear that an export failed wants to hear that it will not
    arrive either. ``{{status}}`` tells them apart."""

    on_success = "onSuccess"
    on_failure = "onFailure"


class Medium(str, Enum):
    email = "email"
    slack = "slack"
    discord = "discord"
    telegram = "telegram"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# One address, nothing a mail header could read as a second one or a new line.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f,;:<>()\[\]\\\"]+@[^@\s\x00-\x1f\x7f,;:<>()\[\]\\\"]+$")
_TELEGRAM_CHAT = re.compile(r"-?[0-9]{1,20}|@[A-Za-z0-9_]{1,32}")


def telegram_chat(text: str) -> str | None:
    """``text`` as the one chat it names (a chat id, or an ``@channel`` in lower case, as
    Telegram reads user names without case), or None when it names none: the rule for a
    message's target and for a tenant's ``telegram_chats`` alike."""
    if not _TELEGRAM_CHAT.fullmatch(text):
        return None
    return text.lower() if text.startswith("@") else text


def is_email_address(text: str) -> bool:
    """Whether ``text`` is one recipient's address, and the one the mail goes to as written
    (``email_recipient``): the rule for a message's target and for a tenant's
    ``email_recipients`` alike, so a grant can only name what a target can be."""
    return (
        bool(_EMAIL.match(text)) and not _CONTROL.search(text) and email_recipient(text) == text
    )


def email_recipient(to: str) -> str | None:
    """The address a message from ``send_email`` to ``to`` is delivered to (the envelope
    recipient ``send_message`` takes from the To header), or None when that is not one
    address. It can differ from ``to``: the header parser decodes RFC 2047 words, so
    ``a@=?utf-8?q?evil.example?=`` goes to ``a@evil.example``."""
    message = EmailMessage()
    try:
        message["To"] = to
    except (ValueError, TypeError, IndexError):
        return None
    found = [address for _, address in email.utils.getaddresses([message["To"]])]
    return found[0] if len(found) == 1 and found[0] else None


class NotificationMessage(BaseModel):
    """One message. ``target``: an email address, or a Telegram chat id (``@channel`` or a
    number); Slack and Discord post where their webhook URL points, so they take none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str | None = None
    policy: Policy
    medium: Medium
    title: Annotated[str, Field(min_length=1)]
    text: Annotated[str, Field(min_length=1)]

    def fields(self) -> tuple[str, ...]:
        own = SUCCESS_FIELDS if self.policy is Policy.on_success else FAILURE_FIELDS
        return COMMON_FIELDS + own


class Notification(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: Annotated[list[NotificationMessage], Field(min_length=1)]

    def for_policy(self, policy: Policy) -> list[NotificationMessage]:
        return [m for m in self.messages if m.policy is policy]


def parse_notification(document: Any, path: str = "notification") -> tuple[Notification | None, list[Problem]]:
    """The notification in ``document``, or every problem with it (JSON paths under ``path``).
    Each message is checked on its own, so one bad message does not hide another's problems."""
    if not isinstance(document, dict):
        return None, [Problem(path, "must be an object with messages")]
    problems = [Problem(f"{path}.{k}", "unknown field") for k in sorted(set(document) - {"messages"})]
    raw_messages = document.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        return None, [*problems, Problem(f"{path}.messages", "required: a non-empty list of messages")]
    messages = []
    for i, raw in enumerate(raw_messages):
        where = f"{path}.messages[{i}]"
        try:
            message = NotificationMessage.model_validate(raw)
        except ValidationError as error:
            problems += problems_from(error, f"{where}.")
            if isinstance(raw, dict):
                for key in ("title", "text"):
                    if isinstance(raw.get(key), str):
                        problems += _template_problems(raw[key], COMMON_FIELDS + SUCCESS_FIELDS + FAILURE_FIELDS, f"{where}.{key}", None)
            continue
        for key in ("title", "text"):
            problems += _template_problems(
                getattr(message, key), message.fields(), f"{where}.{key}", message.policy
            )
        if _CONTROL.search(message.title):
            problems.append(Problem(f"{where}.title", "must be one line, without control characters"))
        if message.medium is Medium.email and not is_email_address(message.target or ""):
            problems.append(Problem(f"{where}.target", "required for email: one recipient's address"))
        if message.medium is Medium.telegram and telegram_chat(message.target or "") is None:
            problems.append(Problem(
                f"{where}.target", "required for telegram: the chat id (a number, or @channel)"
            ))
        messages.append(message)
    if problems:
        return None, problems
    return Notification(messages=messages), []


def _template_problems(
    template: str, allowed: tuple[str, ...], path: str, policy: Policy | None
) -> list[Problem]:
    problems = []
    for name in PLACEHOLDER.findall(template):
        if name in allowed:
            continue
        if name in SUCCESS_FIELDS + FAILURE_FIELDS:
            problems.append(Problem(
                path, f"{{{{{name}}}}} has no value {policy.value} (known: {', '.join(allowed)})"
            ))
        else:
            problems.append(Problem(
                path, f"unknown placeholder {{{{{name}}}}} (known: {', '.join(allowed)})"
            ))
    return problems


def render(
    template: str, values: Mapping[str, Any], escape: Callable[[str], str] = str
) -> str:
    """Fill ``{{name}}`` placeholders, each value through ``escape``; a value that is missing
    renders as empty."""
    return PLACEHOLDER.sub(
        lambda m: "" if values.get(m.group(1)) is None else escape(str(values[m.group(1)])),
        template,
    )


def _slack_text(value: str) -> str:
    # '&' stays: without '<' it starts no markup, and a signed URL's '&'s stay as they are
    return value.replace("<", "&lt;").replace(">", "&gt;")


def _discord_text(value: str) -> str:
    return value.replace("@", "@\u200b")


# A value (an error quoting a request, a name) is text, not markup: in Slack '<!channel>' or
# '<https://x|click>' and in Discord '@everyone' or '<@id>' would ping or link. The operator's
# own template keeps its markup.
VALUE_ESCAPES: dict[Medium, Callable[[str], str]] = {
    Medium.slack: _slack_text, Medium.discord: _discord_text,
}


_LINE_BREAKS = re.compile(r"\s*[\x00-\x1f\x7f-\x9f\u2028\u2029]+\s*")


def render_title(
    template: str, values: Mapping[str, Any], escape: Callable[[str], str] = str
) -> str:
    """The title, on one line: a value may span lines (``{{error}}`` lists every problem on its
    own), and an email subject with a line break cannot be sent at all."""
    return _LINE_BREAKS.sub(" ", render(template, values, escape)).strip()
