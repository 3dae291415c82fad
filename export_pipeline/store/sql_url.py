"""SQL connection URLs as settings give them (``EXPORT_METRICS_SOURCE``,
``EXPORT_SERVICE_STATE``): one set of rules for every setting, and no secret in any of them.
A password never rides in a URL, where logs, process listings and error messages show it:
PostgreSQL reads ``PGUSER``/``PGPASSWORD`` (or a ``PGPASSFILE``) from the environment, as libpq
does. Standard library only, so the settings module can check a URL as it loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

SQL_SCHEMES = ("duckdb", "postgresql", "postgres")
POSTGRES_SCHEMES = ("postgresql", "postgres")
_FORMS = {"duckdb": "duckdb:///path/to/file.db", "postgresql": "postgresql://host[:port]/database"}


class SqlUrlError(ValueError):
    """A URL refused, and why; the message never quotes the URL (a password typed where a
    port or host goes would show)."""


@dataclass(frozen=True)
class SqlTarget:
    """Where a database lives, parsed from a URL that never carries a password."""

    scheme: str
    path: str = ""
    host: str = ""
    port: int | None = None
    database: str = ""
    user: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str, schemes: tuple[str, ...] = SQL_SCHEMES) -> SqlTarget:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in schemes:
            forms = dict.fromkeys(_FORMS["postgresql" if s == "postgres" else s] for s in schemes)
            raise SqlUrlError(f"{scheme or 'no'}:// URL: use {' or '.join(forms)}")
        options = dict(parse_qsl(parts.query))
        if parts.password is not None or any("password" in name.lower() for name in options):
            raise SqlUrlError("the URL must not carry a password: set PGPASSWORD (or a "
                              "PGPASSFILE, ~/.pgpass) in the environment instead")
        if scheme == "duckdb":
            path = unquote(parts.netloc + parts.path)
            if not path or path == "/":
                raise SqlUrlError("duckdb:// needs a database file path")
            return cls(scheme="duckdb", path=path)
        try:
            port = parts.port
        except ValueError:
            raise SqlUrlError("the port is not a number") from None
        return cls(
            scheme="postgres",
            host=parts.hostname or "",
            port=port,
            database=unquote(parts.path.lstrip("/")),
            user=unquote(parts.username) if parts.username else None,
            options=options,
        )

    def describe(self) -> str:
        if self.scheme == "duckdb":
            return f"duckdb://{self.path}"
        port = f":{self.port}" if self.port else ""
        return f"postgresql://{self.host}{port}/{self.database}"


def safe_url(url: str) -> str:
    """``url`` without any user info or query, fit for a log line or an error."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=host, query="").geturl()
