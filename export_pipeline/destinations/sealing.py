"""Inline credentials, sealed: how a request's passwords and keys cross Dagster's run config.

Dagster stores run config in plaintext (run storage, the UI), so a request's secrets are
sealed before the request becomes run config (by the CLI, or ``export-pipeline seal`` for the
Launchpad) and unsealed only inside the deliver op. Sealing is Fernet (AES-128-CBC with an
HMAC-SHA256, from ``cryptography``) under a key the operator keeps in the environment
(``EXPORT_SEALING_KEY``); a sealed value reads ``sealed:v1:<token>`` and is useless without it.
Run config carrying a plaintext secret is refused before a run is created.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from export_pipeline.contract.envelope import unwrap
from export_pipeline.contract.models import SECRET_FIELDS
from export_pipeline.destinations.base import PermanentDeliveryError

SEALED_PREFIX = "sealed:v1:"


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


class Sealer:
    """Seals with the first of ``keys`` (comma-separated) and unseals with any of them, so a
    key can be rotated: put the new one first and keep the old one until its runs are done."""

    def __init__(self, keys: str):
        try:
            self._fernet = MultiFernet(
                [Fernet(k.strip().encode("ascii")) for k in keys.split(",") if k.strip()]
            )
        except (ValueError, TypeError, AttributeError):
            raise ValueError(
                "the sealing key must be a Fernet key: 32 bytes, url-safe base64 "
                "(make one with `export-pipeline seal --new-key`)"
            ) from None

    def seal(self, value: str) -> str:
        return SEALED_PREFIX + self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def unseal(self, value: str, where: str) -> str:
        if not is_sealed(value):
            raise PermanentDeliveryError(f"{where}: a credential must arrive sealed")
        try:
            return self._fernet.decrypt(value[len(SEALED_PREFIX):].encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise PermanentDeliveryError(
                f"{where}: this sealed credential was not sealed with this deployment's "
                "sealing key (EXPORT_SEALING_KEY); seal the request again"
            ) from None


def destination_objects(document: Any) -> Iterator[tuple[str, dict]]:
    """Each destination object in a request document (body or envelope), with its JSON path."""
    envelope = unwrap(document)
    body, prefix = envelope.body, envelope.prefix
    if body is None:
        return
    if isinstance(body.get("destination"), dict):
        yield f"{prefix}destination", body["destination"]
    if isinstance(body.get("destinations"), list):
        for i, item in enumerate(body["destinations"]):
            if isinstance(item, dict):
                yield f"{prefix}destinations[{i}]", item


def plaintext_secret_paths(document: Any) -> list[str]:
    """JSON paths of credentials that are present and not sealed."""
    return [
        f"{path}.{name}"
        for path, destination in destination_objects(document)
        for name in SECRET_FIELDS
        if destination.get(name) is not None and not is_sealed(destination.get(name))
    ]


def seal_document(document: Any, sealer: Sealer) -> Any:
    """A copy of ``document`` with every plaintext credential sealed."""
    sealed = copy.deepcopy(document)
    for _, destination in destination_objects(sealed):
        for name in SECRET_FIELDS:
            value = destination.get(name)
            if isinstance(value, str) and not is_sealed(value):
                destination[name] = sealer.seal(value)
    return sealed


def secret_values(document: Any) -> list[str]:
    """The plaintext credentials in ``document`` (to scrub them from any message)."""
    return [
        destination[name]
        for _, destination in destination_objects(document)
        for name in SECRET_FIELDS
        if isinstance(destination.get(name), str) and not is_sealed(destination[name])
    ]


def seal_for_run_config(document: Any, keys: str | None) -> Any:
    """What every entry point (CLI, inbox sensor) calls before a request becomes run config:
    the document with its credentials sealed under the deployment's sealing key
    (``EXPORT_SEALING_KEY``). A document with no inline credentials is returned as it is."""
    if not plaintext_secret_paths(document):
        return document
    if not keys:
        raise ValueError(
            "the request carries inline credentials and EXPORT_SEALING_KEY is not set: "
            "they cannot be sealed, and run config never holds them in plaintext"
        )
    return seal_document(document, Sealer(keys))


SHORT_SECRET = 8


def mask_secrets(message: str, secrets: list[str]) -> str:
    """``message`` with every credential in it replaced by ``***``, whatever a library put in
    it. A short secret is masked only where it stands as a whole token, so a password ``p``
    does not turn ``loopback`` into ``loo***back`` and hide the real reason."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= SHORT_SECRET:
            message = message.replace(secret, "***")
        else:
            message = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", message)
    return message
