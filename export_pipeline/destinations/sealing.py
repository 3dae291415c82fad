"""Inline credentials, sealed: how a request's passwords and keys cross Dagster's run config.

Dagster stores run config in plaintext (run storage, the UI), so a request's secrets are
sealed before the request becomes run config (by the CLI, or ``export-pipeline seal`` for the
Launchpad) and unsealed only inside the deliver op. Sealing is Fernet (AES-128-CBC with an
HMAC-SHA256, from ``cryptography``) under a key the operator keeps in the environment
(``EXPORT_SEALING_KEY``); a sealed value reads ``sealed:v2:<token>``.

Run config is shown to whoever can see the UI, so a sealed value must be useless anywhere but
where it was sealed for: it is bound to its field and to the destination that receives it
(type, server, port, user, bucket, region). Pasted into another destination, or into another
field, it does not unseal, so nobody can have a password they only saw sealed sent to a
server of their own. Values sealed before that binding (``sealed:v1:``) are refused.
Run config carrying a plaintext secret is refused before a run is created.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from export_pipeline.contract.models import DEFAULT_PORTS, SECRET_FIELDS
from export_pipeline.destinations.base import PermanentDeliveryError

SEALED_PREFIX = "sealed:v2:"
_ANY_SEALED = "sealed:"


def generate_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def is_sealed(value: Any) -> bool:
    """Sealed by this or an earlier version (an earlier one's is refused when unsealed, not
    sealed a second time)."""
    return isinstance(value, str) and value.startswith(_ANY_SEALED)


def binding(destination: Mapping[str, Any], field: str) -> str:
    """What a credential is sealed for: its field and where it is sent, from a destination
    object as written in a request or as validated (``port`` ``"22"``, ``22`` and omitted
    are one port; host names in any case are one host)."""
    kind = str(destination.get("type") or "aws").lower()
    port = destination.get("port")
    if port is None:
        port = DEFAULT_PORTS.get(kind)
    elif isinstance(port, str) and port.strip().isdigit():
        port = int(port)
    server = destination.get("server")
    where = [
        field, kind, str(server).lower().rstrip(".") if server is not None else None,
        port if isinstance(port, int) else (None if port is None else str(port)),
        *(None if destination.get(k) is None else str(destination[k])
          for k in ("username", "aws_bucket", "aws_region")),
    ]
    return hashlib.sha256(json.dumps(where).encode("utf-8")).hexdigest()


class Sealer:
    """Seals with the first of ``keys`` (comma-separated) and unseals with any of them, so a
    key can be rotated: put the new one first and keep the old one until its runs are done."""

    def __init__(self, keys: str):
        # Imported here: the CLI checks every request for credentials before its store read
        # starts, and most requests have none to seal.
        from cryptography.fernet import Fernet, MultiFernet

        try:
            self._fernet = MultiFernet(
                [Fernet(k.strip().encode("ascii")) for k in keys.split(",") if k.strip()]
            )
        except (ValueError, TypeError, AttributeError):
            raise ValueError(
                "the sealing key must be a Fernet key: 32 bytes, url-safe base64 "
                "(make one with `export-pipeline seal --new-key`)"
            ) from None

    def seal(self, value: str, bound_to: str) -> str:
        """``value`` sealed for ``bound_to`` (``binding``)."""
        payload = json.dumps({"for": bound_to, "value": value}).encode("utf-8")
        return SEALED_PREFIX + self._fernet.encrypt(payload).decode("ascii")

    def unseal(self, value: str, where: str, bound_to: str) -> str:
        from cryptography.fernet import InvalidToken

        if not is_sealed(value):
            raise PermanentDeliveryError(f"{where}: a credential must arrive sealed")
        if not value.startswith(SEALED_PREFIX):
            raise PermanentDeliveryError(
                f"{where}: this credential was sealed by an earlier version, without the "
                "destination it is for; seal the request again (export-pipeline seal)"
            )
        try:
            payload = json.loads(self._fernet.decrypt(value[len(SEALED_PREFIX):].encode("ascii")))
        except (InvalidToken, ValueError):
            raise PermanentDeliveryError(
                f"{where}: this sealed credential was not sealed with this deployment's "
                "sealing key (EXPORT_SEALING_KEY); seal the request again"
            ) from None
        if not hmac.compare_digest(str(payload.get("for")), bound_to):
            raise PermanentDeliveryError(
                f"{where}: this sealed credential was sealed for another destination or "
                "field; seal it again for this one"
            )
        return payload["value"]


def secret_slots(document: Any) -> Iterator[tuple[str, dict, str]]:
    """Every credential field anywhere in ``document``, as (JSON path, the object holding it,
    the field name): wherever a document puts one (body, envelope, both, or a place no rule
    reads), it is sealed, refused or masked alike."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        children: list[tuple[str, Any]] = []
        if isinstance(value, dict):
            for key, child in value.items():
                child_path = f"{path}.{key}" if path else str(key)
                if key in SECRET_FIELDS and child is not None:
                    yield child_path, value, key
                children.append((child_path, child))
        elif isinstance(value, list):
            children = [(f"{path}[{i}]", child) for i, child in enumerate(value)]
        stack.extend(c for c in reversed(children) if isinstance(c[1], (dict, list)))


def plaintext_secret_paths(document: Any) -> list[str]:
    """JSON paths of credentials that are present and not sealed."""
    return [path for path, holder, name in secret_slots(document) if not is_sealed(holder[name])]


def sealed_secret_paths(document: Any) -> list[str]:
    """JSON paths of credentials that arrive already sealed."""
    return [path for path, holder, name in secret_slots(document) if is_sealed(holder[name])]


def seal_document(document: Any, sealer: Sealer) -> Any:
    """A copy of ``document`` with every plaintext credential sealed for its destination."""
    sealed = copy.deepcopy(document)
    for _, holder, name in list(secret_slots(sealed)):
        value = holder[name]
        if isinstance(value, str) and not is_sealed(value):
            holder[name] = sealer.seal(value, binding(holder, name))
    return sealed


def secret_values(document: Any) -> list[str]:
    """The plaintext credentials in ``document`` (to scrub them from any message)."""
    return [
        holder[name] for _, holder, name in secret_slots(document)
        if isinstance(holder[name], str) and not is_sealed(holder[name])
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
