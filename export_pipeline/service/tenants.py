"""Tenants of the export service and their API keys, read from a YAML file.

The file holds key *hashes* only (SHA-256 of the key): keys are 256-bit random tokens, so a
fast hash is as safe as a slow one and lets every call be checked in one lookup. A key is
shown once, when ``export-pipeline keys new`` makes it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from pydantic.functional_validators import AfterValidator

from export_pipeline.contract.models import FileFormat
from export_pipeline.contract.problems import InvalidRequest, Problem
from export_pipeline.contract.documents import load_document
from export_pipeline.settings import existing_file
from export_pipeline.notifications.messages import Medium, telegram_chat
from export_pipeline.notifications.recipients import recipient_grant

KEY_PREFIX = "exk_"
TENANT_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_HASH = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
_NAME = Annotated[str, StringConstraints(min_length=1)]
_RECIPIENT = Annotated[str, AfterValidator(recipient_grant)]


def _chat_grant(text: str) -> str:
    chat = telegram_chat(text)
    if chat is None:
        raise ValueError("a Telegram chat id (-1001234567) or @channel")
    return chat


_CHAT = Annotated[str, AfterValidator(_chat_grant)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomerScopes(_Strict):
    """What a tenant may export: omitted means any; a list means only these."""

    entities: list[Annotated[str, StringConstraints(min_length=1)]] | None = None
    entity_types: list[Annotated[str, StringConstraints(min_length=1)]] | None = None


class RateLimit(_Strict):
    requests: int = Field(ge=1)
    per_seconds: float = Field(gt=0)


class TenantBranding(_Strict):
    """The tenant's look on PDF reports, in place of the deployment's ``EXPORT_BRAND_*``."""

    name: Annotated[str, StringConstraints(max_length=100)] = ""
    logo_path: str = ""

    @field_validator("logo_path")
    @classmethod
    def _logo_is_a_file(cls, value: str) -> str:
        return existing_file(value)
    primary_color: Annotated[str, StringConstraints(pattern=r"^#[0-9A-Fa-f]{6}$")] | None = None
    accent_color: Annotated[str, StringConstraints(pattern=r"^#[0-9A-Fa-f]{6}$")] | None = None


class ApiKey(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    sha256: _HASH


class Tenant(_Strict):
    name: Annotated[str, StringConstraints(pattern=TENANT_NAME_PATTERN)]
    active: bool = True
    customer_scopes: CustomerScopes = CustomerScopes()
    formats: list[FileFormat] | None = None
    branding: TenantBranding | None = None
    monthly_quota: int | None = Field(None, ge=0)
    rate_limit: RateLimit | None = None
    # The deployment's own named credentials and definitions a request may use: each is
    # denied unless listed here (see ``scopes``).
    saved_keys: list[_NAME] = []
    """SFTP ``savedKey`` names (key files in ``EXPORT_SFTP_KEYS_DIR``); omitted: none."""
    gcs_buckets: list[_NAME] = []
    """GCS buckets it may deliver to with the service's own Google identity; omitted: none."""
    saved_exports: list[_NAME] = []
    """Saved exports (``EXPORT_DEFINITIONS_PATH``) it may run, with their deliveries and
    notification; omitted: none."""
    notification_media: list[Medium] = [Medium.email]
    """Media a request's notification may use (Slack, Discord and Telegram post through the
    deployment's webhooks and bot); omitted: email only."""
    email_recipients: list[_RECIPIENT] = []
    """Whom a request's email messages may go to (the email medium also needs
    ``notification_media``): an address, or ``@domain`` for any address at exactly that domain
    (see ``notifications.recipients``); omitted: nobody, since the mail goes out through the
    operator's SMTP server under the operator's sender address."""
    telegram_chats: list[_CHAT] = []
    """The chats a request's Telegram messages may go to (the medium also needs
    ``notification_media``); omitted: none, since the deployment's bot may sit in other
    tenants' chats too."""
    keys: list[ApiKey] = []


class _File(_Strict):
    tenants: list[Tenant]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant and the name of the key used (an export's ``created_by``)."""

    tenant: Tenant
    key_name: str


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_entry(key: str, name: str) -> str:
    """The YAML line to add under a tenant's ``keys``."""
    return f'- {{name: {json.dumps(name)}, sha256: "{key_hash(key)}"}}'


class TenantDirectory:
    def __init__(self, tenants: list[Tenant]):
        self.tenants = {t.name: t for t in tenants}
        self._by_hash = {k.sha256: (t, k.name) for t in tenants for k in t.keys}

    def authenticate(self, key: str | None) -> Caller | None:
        if not key:
            return None
        # A lookup by digest: timing can tell at most how much of a hash matched, which says
        # nothing about a key.
        found = self._by_hash.get(key_hash(key))
        return Caller(*found) if found else None


def parse_tenants(document: Any) -> TenantDirectory:
    """The tenants in ``document``, or ``InvalidRequest`` naming every problem with its path."""
    try:
        parsed = _File.model_validate(document)
    except ValidationError as error:
        raise InvalidRequest([
            Problem(_path(e["loc"]), "unknown field" if e["type"] == "extra_forbidden" else e["msg"])
            for e in error.errors()
        ]) from None
    problems, names, hashes = [], set(), set()
    for i, tenant in enumerate(parsed.tenants):
        if tenant.name in names:
            problems.append(Problem(f"tenants[{i}].name", f"{tenant.name!r} is already a tenant"))
        names.add(tenant.name)
        for j, key in enumerate(tenant.keys):
            if key.sha256 in hashes:
                problems.append(Problem(f"tenants[{i}].keys[{j}].sha256", "this key is already listed"))
            hashes.add(key.sha256)
    if problems:
        raise InvalidRequest(problems)
    return TenantDirectory(parsed.tenants)


def load_tenants(path: str) -> TenantDirectory:
    with open(path, encoding="utf-8") as handle:
        return parse_tenants(load_document(handle.read(), path))


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
