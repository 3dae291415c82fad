"""Whom a tenant's notifications may email: the ``email_recipients`` of its entry.

Email goes out through the operator's SMTP server, from the operator's sender address, with
a title and text the tenant writes and the export's signed URL. Without a limit a tenant
could mail anyone: spam or phishing from the operator's domain, or its files to outsiders.
So a tenant may mail only the recipients its entry lists, each either

- an exact address, ``ops@acme.example``: the local part as written (it is the receiving
  server's to interpret), the domain in any case;
- ``@acme.example``: any address at exactly that domain; not its subdomains
  (``@sub.acme.example`` is listed on its own when meant).

Domains are compared in ASCII only (a domain that is not ASCII matches nothing; list an
internationalized one as its ``xn--`` form), and a target is matched as the mail will be
addressed (``messages.is_email_address``), so a look-alike, a trailing dot or an encoded word
that the mailer would read as another domain is not granted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from export_pipeline.notifications.messages import is_email_address

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
DOMAIN_MAX = 253


def recipient_grant(text: str) -> str:
    """``text`` as an entry of ``email_recipients``, its domain in lower case; ``ValueError``
    says what an entry is when it is neither an address nor ``@domain``."""
    local, at, domain = text.rpartition("@")
    plain_domain = bool(at) and len(domain) <= DOMAIN_MAX and bool(_DOMAIN.fullmatch(domain))
    address = bool(local) and is_email_address(text)
    # '*' is a legal local part, but in a grant it would be read as the wildcard it is not
    if not plain_domain or (local and not address) or "*" in local:
        raise ValueError(
            "an email address (ops@acme.example) or @domain (@acme.example: any address at "
            "exactly that domain; no wildcards), the domain in ASCII letters, digits, '-' and "
            "'.' (an internationalized one as xn--…)"
        )
    return f"{local}@{domain.lower()}"


def recipient_granted(target: str, grants: Iterable[str]) -> bool:
    """Whether ``grants`` (entries made by ``recipient_grant``) let a message go to ``target``."""
    local, at, domain = target.rpartition("@")
    if not (local and at and domain.isascii() and is_email_address(target)):
        return False
    domain = domain.lower()
    granted = set(grants)
    return f"@{domain}" in granted or f"{local}@{domain}" in granted
