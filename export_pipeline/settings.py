"""Every setting of the product, read from the environment in one place (pydantic-settings).

Each field has its type, default and description; one class per area. The README's settings
tables are generated from here (``python -m export_pipeline.settings --markdown``, or
``--update README.md``) and a test keeps them equal. Dagster resources take their values from
here (``orchestration.environment``, as ``EnvVar`` where the environment sets them, so the UI
shows where a value came from) and their field descriptions too (``resource_field``). Plain
modules are handed values; they never read the environment themselves.

AWS settings are boto3's (``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``, ...), ``DAGSTER_HOME`` is
Dagster's, ``GOOGLE_APPLICATION_CREDENTIALS`` and ``STORAGE_EMULATOR_HOST`` are Google's: none
is wrapped here.

This module imports nothing heavy, so reading a setting costs no start-up.
"""

from __future__ import annotations

import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from export_pipeline.formats.branding import Branding
from export_pipeline.publishing.s3_upload import PART_SIZE

DEFAULT_PREFIX = "exports"
MIB = 1024 * 1024


def demo_store_path() -> Path:
    """Where ``export-pipeline demo`` builds its store, and the metric store when
    ``EXPORT_METRICS_PATH`` is not set: ``$XDG_DATA_HOME/export-pipeline/demo-store``."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "export-pipeline" / "demo-store"


class SettingsError(ValueError):
    """Settings the environment got wrong: each variable and what is wrong, never its value."""


def load(section: type[BaseSettings]) -> Any:
    """One area's settings from the environment, or a ``SettingsError``."""
    try:
        return section()
    except ValidationError as error:
        raise SettingsError("; ".join(
            f"{env_name(section, str(problem['loc'][0]))}: {problem['msg']}"
            for problem in error.errors(include_input=False)
        )) from None


def setting(default: Any = None, description: str = "", *, shown: str | None = None,
            **constraints: Any) -> Any:
    """A settings field; ``shown`` is its default as the README says it, when the value alone
    would not tell a reader (``None``, a computed path)."""
    extra = {"shown_default": shown} if shown is not None else None
    if callable(default):
        return Field(default_factory=default, description=description,
                     json_schema_extra=extra, **constraints)
    return Field(default, description=description, json_schema_extra=extra, **constraints)


class Section(BaseSettings):
    """One area's settings, ``EXPORT_<FIELD>`` each. An empty variable counts as unset."""

    model_config = SettingsConfigDict(env_prefix="EXPORT_", env_ignore_empty=True, extra="ignore")

    @classmethod
    def load(cls):
        """This area's settings from the environment, or a ``SettingsError``."""
        return load(cls)


class BucketSettings(Section):
    """The export bucket and its download links."""

    bucket: Optional[str] = setting(
        None, "bucket the export files are written to",
        shown="required to run (`demo` uses `export-pipeline-demo`)", min_length=3,
    )
    prefix: str = setting(
        DEFAULT_PREFIX, "key prefix of export files; `/` puts them at the bucket root (empty "
        "counts as unset: the default)",
    )
    url_ttl: int = setting(
        3600, "signed URL lifetime, seconds; the URL is a bearer token, keep it short "
        "(SigV4 allows at most 7 days)", ge=1, le=7 * 24 * 3600,
    )
    part_size: int = setting(
        PART_SIZE, "multipart upload part size, bytes (S3's minimum is 5 MiB); four parts "
        "upload at once", shown=f"{PART_SIZE // MIB} MiB", ge=5 * MIB, le=5 * 1024 * MIB,
    )


class MetricStoreSettings(Section):
    """Where metric data is read: a Parquet folder (the default) or a SQL table, and how that
    table maps onto the store's model. Credentials are never part of these: PostgreSQL reads
    ``PGUSER``/``PGPASSWORD`` (or ``~/.pgpass``) from the environment as libpq does."""

    model_config = SettingsConfigDict(env_prefix="EXPORT_METRICS_", env_ignore_empty=True, extra="ignore")

    source: str = setting(
        "", "parquet:///path, duckdb:///path/file.db or postgresql://host[:port]/db (no password "
        "in it)", shown="none: the Parquet folder `EXPORT_METRICS_PATH`",
    )
    path: Path = setting(
        demo_store_path, "folder of the Parquet metric store",
        shown="the demo store, `$XDG_DATA_HOME/export-pipeline/demo-store` (`~/.local/share/…`)",
    )
    table: str = setting("metrics", "SQL table (or view), optionally schema.table")
    columns: str = setting(
        "", "SQL columns behind the model: timestamp=COL,entity_id=COL,entity_type=COL",
        shown="the model's own names",
    )
    measures: str = setting("", "comma-separated measure columns", shown="every numeric column")
    dimensions: str = setting("", "comma-separated dimension columns", shown="every string column")
    statement_timeout: float = setting(
        600.0, "seconds one SQL query may run before the engine stops it (0: none)", ge=0
    )
    retries: int = setting(
        3, "retries of a transient SQL error (reset connection, serialization failure, too many "
        "connections), backoff 0.5 s doubling", ge=0, le=10,
    )

    @property
    def scheme(self) -> str:
        return self.source.partition("://")[0].lower() if "://" in self.source else "parquet"

    @property
    def parquet_path(self) -> str:
        """The Parquet folder: ``parquet://PATH`` or ``EXPORT_METRICS_PATH``."""
        if self.source and self.scheme == "parquet":
            return self.source.partition("://")[2]
        return str(self.path)


class BrandingSettings(Section):
    """How PDF reports look, per deployment (never per request)."""

    model_config = SettingsConfigDict(env_prefix="EXPORT_BRAND_", env_ignore_empty=True, extra="ignore")

    name: str = setting("", "workspace name on PDF reports (cover, footer)", shown="none")
    logo: str = setting("", "PNG or JPEG file shown on the PDF cover", shown="none")
    primary: str = setting(Branding.primary_color, "PDF primary colour, hex", pattern=r"^#[0-9A-Fa-f]{6}$")
    accent: str = setting(Branding.accent_color, "PDF accent colour, hex", pattern=r"^#[0-9A-Fa-f]{6}$")

    @field_validator("logo")
    @classmethod
    def _logo_is_a_file(cls, value: str) -> str:
        return existing_file(value)


def existing_file(value: str) -> str:
    """``value`` when empty or a file; a logo that is not there is refused where it is set,
    not left off every report unnoticed."""
    if value and not Path(value).is_file():
        raise ValueError("names no file (a PNG or JPEG for the PDF cover)")
    return value


class InboxSettings(Section):
    """The request inbox in S3 and the sensors that watch it."""

    inbox_bucket: Optional[str] = setting(
        None, "bucket of the inbox and the results", shown="`EXPORT_BUCKET`", min_length=3,
    )
    inbox_prefix: str = setting("requests/", "where request files are dropped")
    results_prefix: str = setting("results/", "where result objects are written")
    inbox_sensor: Literal["running", "stopped"] = setting(
        "running", "`running` or `stopped`: the inbox sensor's default state",
    )
    sensor_interval_seconds: int = setting(
        30, "minimum interval of the inbox, result and notification sensors, seconds", ge=1,
    )

    @field_validator("inbox_sensor", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class SavedExportSettings(Section):
    """Saved (recurring) export definitions."""

    definitions_path: Optional[Path] = setting(
        None, "folder of saved export definitions", shown="unset (none)",
    )


class NotificationSettings(Section):
    """Where run notifications go; the secrets reach Dagster as ``EnvVar`` only."""

    smtp_host: Optional[str] = setting(None, "SMTP server", shown="unset (email off)")
    smtp_port: int = setting(587, "SMTP port", ge=1, le=65535)
    smtp_username: Optional[str] = setting(None, "SMTP login", shown="none")
    smtp_password: Optional[SecretStr] = setting(None, "SMTP password", shown="none")
    smtp_security: Literal["starttls", "ssl", "none"] = setting(
        "starttls", "`starttls`, `ssl` or `none`",
    )
    smtp_from: str = setting("export-pipeline@localhost", "sender address")
    slack_webhook_url: Optional[SecretStr] = setting(
        None, "Slack incoming webhook", shown="unset (Slack off)",
    )
    discord_webhook_url: Optional[SecretStr] = setting(
        None, "Discord webhook", shown="unset (Discord off)",
    )
    telegram_bot_token: Optional[SecretStr] = setting(
        None, "Telegram bot token", shown="unset (Telegram off)",
    )
    telegram_api_url: str = setting("https://api.telegram.org", "Telegram Bot API base URL")
    notify_attempts: int = setting(3, "tries per message", ge=1, le=20)
    notify_backoff_seconds: float = setting(
        2.0, "wait before the second try, seconds; doubles after each", ge=0, le=300,
    )


class DeliverySettings(Section):
    """The operator's rules and keys for deliveries beyond the export bucket."""

    sealing_key: Optional[SecretStr] = setting(
        None, "Fernet key(s), comma-separated, sealing inline credentials; the first seals, "
        "any unseals", shown="none (the CLI makes one per process)",
    )
    destination_hosts: str = setting(
        "", "allow-list of destination hosts, comma-separated (`*.example.com` patterns)",
        shown="any public host",
    )
    destination_allow_private: bool = setting(
        False, "`1` allows private, shared and link-local addresses", shown="refused",
    )
    destination_allow_loopback: bool = setting(
        False, "`1` allows loopback (tests, local use)", shown="refused",
    )
    sftp_known_hosts: Optional[str] = setting(
        None, "OpenSSH known_hosts file SFTP host keys are checked against",
        shown="none: SFTP refuses to connect",
    )
    sftp_keys_dir: Optional[str] = setting(
        None, "folder of private keys that a request's `savedKey` names", shown="none",
    )
    ftps_ca_file: Optional[str] = setting(
        None, "CA bundle FTPS certificates are verified with", shown="the system's",
    )
    destination_s3_endpoint: Optional[str] = setting(
        None, "endpoint of customer S3 deliveries (an S3-compatible store)",
        shown="AWS; our own `AWS_ENDPOINT_URL_S3` is never used for them",
    )
    gcs_project: Optional[str] = setting(None, "GCS project of the client", shown="from the credentials")
    destination_timeout: float = setting(
        30.0, "connect/read timeout per delivery connection, seconds", gt=0, le=3600,
    )

    def sealing_keys(self) -> str | None:
        return self.sealing_key.get_secret_value() if self.sealing_key else None


class LimitSettings(BaseSettings):
    """What one request may cost, estimated at validation and refused above these numbers,
    before anything runs. The same limits hold for the CLI, the Launchpad, the inbox, saved
    exports and the API."""

    model_config = SettingsConfigDict(env_prefix="EXPORT_MAX_", extra="ignore")

    rows: int = Field(10_000_000, ge=1, description="estimated rows of one export file")
    columns: int = Field(10_000, ge=1, description="columns of one export file (XLSX allows at most 16,384)")
    cells: int = Field(200_000_000, ge=1, description="estimated cells (rows x columns) of one export file")
    windows: int = Field(2_000, ge=1, description="store reads (90-day windows x metric requests) of one export")
    entities: int = Field(10_000, ge=1, description="entity ids named in one metric request")
    metric_requests: int = Field(100, ge=1, description="metric requests in one export")


@lru_cache(maxsize=1)
def get_limits() -> LimitSettings:
    return LimitSettings()


class ServiceSettings(Section):
    """The export service API (``export-pipeline serve``): who may call it, where its own
    records live and what one call may cost."""

    model_config = SettingsConfigDict(env_prefix="EXPORT_SERVICE_", env_ignore_empty=True, extra="ignore")

    tenants_file: str | None = Field(
        None, validation_alias="EXPORT_TENANTS_FILE",
        description="YAML file of the tenants and their API key hashes",
        json_schema_extra={"shown_default": "required to serve"},
    )
    state: str | None = Field(
        None, validation_alias="EXPORT_SERVICE_STATE",
        description="where the export resources (name, notes, tags, owner), the quotas' counts "
        "and the rate limits are kept: a SQLite file (one service process), or "
        "postgresql://host[:port]/database (no password in it: `PGPASSWORD`/`PGPASSFILE`), "
        "required for more than one",
        json_schema_extra={"shown_default": "`export-service.sqlite` in `DAGSTER_HOME`"},
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="largest request body accepted, bytes; larger is refused (413) unread"
    )
    rate_limit_requests: int = Field(
        120, ge=1, description="calls a tenant may make per window when its entry sets no rate_limit"
    )
    rate_limit_seconds: float = Field(60.0, gt=0, description="the rate limit's window, seconds")
    monthly_quota: int = Field(
        1000, ge=0, description="exports a tenant may create per calendar month (UTC) when its entry sets none"
    )
    page_size: int = Field(50, ge=1, le=500, description="exports per page of GET /v1/exports when no limit is given")

    @field_validator("state")
    @classmethod
    def _state_url(cls, value: str | None) -> str | None:
        """A URL is checked as the service will open it: refused here, at start-up."""
        if value:
            from export_pipeline.service.state import state_target

            state_target(value)
        return value


class CleanupSettings(Section):
    """Clearing multipart uploads that runs killed outright left open (their parts are
    billed): the sweep's threshold and schedule, and the lifecycle rule's age."""

    stale_upload_hours: float = Field(
        24, gt=0, description="the sweep aborts uploads under the export prefix begun longer ago than this"
    )
    stale_upload_schedule: str = Field(
        "0 * * * *", pattern=r"^\s*\S+(\s+\S+){4}\s*$",
        description="cron schedule of the sweep (the stale_upload_sweep schedule), five fields",
    )
    stale_upload_sweep: Literal["running", "stopped"] = Field(
        "stopped", description="the sweep schedule's state when the code location loads: on "
        "for stores without lifecycle rules"
    )
    abort_upload_days: int = Field(
        1, ge=1, description="DaysAfterInitiation of the lifecycle rule `cleanup lifecycle` sets"
    )


class RetentionSettings(Section):
    """How long export files are kept: a lifecycle rule (``cleanup retention``) or, for stores
    without lifecycle rules, a scheduled sweep deletes them; the API then answers them expired."""

    retention_days: int = Field(
        30, ge=1, description="days an export file is kept after it is written; then it is "
        "deleted and the API answers the export `expired`"
    )
    retention_schedule: str = Field(
        "30 3 * * *", pattern=r"^\s*\S+(\s+\S+){4}\s*$",
        description="cron schedule of the retention sweep (the export_retention_sweep schedule), five fields",
    )
    retention_sweep: Literal["running", "stopped"] = Field(
        "stopped", description="the retention sweep schedule's state when the code location "
        "loads: on for stores without lifecycle rules"
    )


class DeploymentSettings(Section):
    """The Dagster instance of a production deployment (``deploy/dagster.yaml``): how many runs
    at once, how long a run may take to start and to finish, and how often a run whose worker
    died is retried. ``export-pipeline instance-config`` writes them into ``dagster.yaml``;
    the product itself reads none of them."""

    max_concurrent_runs: int = Field(
        10, ge=-1, description="runs in progress at once across the deployment (-1: no limit)"
    )
    tenant_concurrent_runs: int = Field(
        2, ge=1, description="runs in progress at once per tenant (the export_pipeline/tenant tag)"
    )
    destination_host_concurrent_runs: int = Field(
        2, ge=1, description="runs in progress at once per delivery host "
        "(the export_pipeline/destination_host tag)"
    )
    run_start_timeout: int = Field(
        180, ge=1, description="seconds a launched run may take to start before it is marked failed"
    )
    run_max_runtime: int = Field(
        7200, ge=0, description="seconds a run may run before it is cancelled (0: no limit)"
    )
    run_monitor_interval: int = Field(
        120, ge=1, description="seconds between the daemon's checks of running runs and their workers"
    )
    run_max_resume_attempts: int = Field(
        0, ge=0, description="times a run whose worker died is resumed (only launchers that can "
        "resume, e.g. Kubernetes) before it is marked failed"
    )
    run_retries: int = Field(
        2, ge=0, description="new runs started for a run that failed because its worker crashed or "
        "was lost (never for a failed export step)"
    )


class ThroughputSettings(Section):
    """Many exports arriving together: how much of the backlog each sensor tick works off, so
    result objects and notifications keep up with the runs."""

    status_sensor_runs_per_tick: int = Field(
        20, ge=1, le=1000, description="runs each result and notification sensor handles per "
        "tick (Dagster's own default is 5: at the default interval, 10 results a minute; much "
        "more can outlast Dagster's 60 s sensor time limit on a busy machine, and a timed-out "
        "tick is repeated whole); sets Dagster's `DAGSTER_RUN_STATUS_SENSOR_PROCESS_LIMIT` "
        "unless that is set"
    )


class Settings(BaseModel):
    """Every area's settings, read when this is built (``get_settings``)."""

    bucket: BucketSettings
    metric_store: MetricStoreSettings
    branding: BrandingSettings
    inbox: InboxSettings
    saved_exports: SavedExportSettings
    notifications: NotificationSettings
    delivery: DeliverySettings
    limits: LimitSettings
    cleanup: CleanupSettings
    retention: RetentionSettings
    service: ServiceSettings
    deployment: DeploymentSettings
    throughput: ThroughputSettings


SECTIONS: dict[str, type[BaseSettings]] = {
    name: field.annotation for name, field in Settings.model_fields.items()
}


def get_settings() -> Settings:
    """All settings, from the environment as it is now (the CLI's ``demo`` sets some first,
    so nothing is cached), or a ``SettingsError`` naming every wrong variable."""
    loaded, problems = {}, []
    for name, section in SECTIONS.items():
        try:
            loaded[name] = load(section)
        except SettingsError as error:
            problems.append(str(error))
    if problems:
        raise SettingsError("; ".join(problems))
    return Settings(**loaded)


def env_name(section: type[BaseSettings], field: str) -> str:
    """The variable a field is read from (``field`` may be its alias, the variable itself)."""
    if field not in section.model_fields:
        return field
    alias = section.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else (section.model_config.get("env_prefix", "") + field).upper()


def is_set(section: type[BaseSettings], field: str) -> bool:
    """Whether the environment sets the field (an empty variable does not)."""
    return bool(os.environ.get(env_name(section, field)))


def resource_field(section: type[BaseSettings], field: str, *, required: bool = False) -> Any:
    """A Dagster resource field that carries a setting: the setting's default (none when it
    is computed or ``required``) and its description, naming the variable, so the UI says
    what sets it."""
    info = section.model_fields[field]
    description = f"{info.description} (`{env_name(section, field)}`)"
    if required or info.default_factory is not None:
        return Field(description=description)
    return Field(default=info.default, description=description)


def shown_default(section: type[BaseSettings], field: str) -> str:
    info = section.model_fields[field]
    extra = info.json_schema_extra or {}
    if "shown_default" in extra:
        return extra["shown_default"]
    default = info.default
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`"


def markdown_table(section: type[BaseSettings]) -> str:
    """The README's table of one area: variable, meaning, default."""
    rows = ["| variable | meaning | default |", "| --- | --- | --- |"]
    for field, info in section.model_fields.items():
        rows.append(f"| `{env_name(section, field)}` | {info.description} | "
                    f"{shown_default(section, field)} |")
    return "\n".join(rows)


def _block(name: str) -> re.Pattern[str]:
    """An area's block: its opening marker line, any table lines, the closing marker."""
    return re.compile(rf"(<!-- settings: {name} -->\n)(?:[^<\n][^\n]*\n)*(<!-- /settings -->)")


def update_readme(text: str) -> str:
    """``text`` with each ``<!-- settings: AREA -->`` block replaced by that area's table."""
    for name, section in SECTIONS.items():
        text = _block(name).sub(lambda m, s=section: m[1] + markdown_table(s) + "\n" + m[2], text)
    return text


def main(argv: list[str]) -> int:
    """``--markdown [AREA ...]`` prints the tables; ``--update README.md`` rewrites them."""
    if argv[:1] == ["--update"] and len(argv) == 2:
        path = Path(argv[1])
        path.write_text(update_readme(path.read_text()))
        return 0
    if argv[:1] == ["--markdown"]:
        for name in argv[1:] or SECTIONS:
            print(f"<!-- settings: {name} -->\n{markdown_table(SECTIONS[name])}\n<!-- /settings -->\n")
        return 0
    print("usage: python -m export_pipeline.settings --markdown [AREA ...] | --update README.md",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        status = main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:  # `--markdown | head`: the reader went away; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status = 141  # 128 + SIGPIPE, as a shell reports it
    sys.exit(status)
