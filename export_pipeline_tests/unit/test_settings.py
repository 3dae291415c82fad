"""The one settings module: each variable read with its type, bounds and default; the README's
tables equal to it; nothing else in the package reading an ``EXPORT_*`` variable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from export_pipeline.settings import (
    SECTIONS,
    BucketSettings,
    DeliverySettings,
    LimitSettings,
    SettingsError,
    demo_store_path,
    env_name,
    get_settings,
    main,
    markdown_table,
    update_readme,
)

REPO = Path(__file__).parents[2]
README = REPO / "README.md"
PACKAGE = REPO / "export_pipeline"
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def no_export_settings(monkeypatch):
    for name in list(os.environ):
        if name.startswith("EXPORT_"):
            monkeypatch.delenv(name)


# variable, what it is set to, where it lands, what it must read as (written out by hand)
EVERY_VARIABLE = [
    ("EXPORT_BUCKET", "my-exports", "bucket.bucket", "my-exports"),
    ("EXPORT_PREFIX", "tenant-a/exports", "bucket.prefix", "tenant-a/exports"),
    ("EXPORT_URL_TTL", "600", "bucket.url_ttl", 600),
    ("EXPORT_PART_SIZE", "16777216", "bucket.part_size", 16 * MIB),
    ("EXPORT_METRICS_PATH", "/srv/metrics", "metric_store.path", Path("/srv/metrics")),
    ("EXPORT_BRAND_NAME", "Acme Malls", "branding.name", "Acme Malls"),
    ("EXPORT_BRAND_LOGO", str(README), "branding.logo", str(README)),  # any file will do
    ("EXPORT_BRAND_PRIMARY", "#0B6E4F", "branding.primary", "#0B6E4F"),
    ("EXPORT_BRAND_ACCENT", "#aa00ff", "branding.accent", "#aa00ff"),
    ("EXPORT_INBOX_BUCKET", "inbox-bucket", "inbox.inbox_bucket", "inbox-bucket"),
    ("EXPORT_INBOX_PREFIX", "in/", "inbox.inbox_prefix", "in/"),
    ("EXPORT_RESULTS_PREFIX", "out/", "inbox.results_prefix", "out/"),
    ("EXPORT_INBOX_SENSOR", " STOPPED ", "inbox.inbox_sensor", "stopped"),
    ("EXPORT_SENSOR_INTERVAL_SECONDS", "5", "inbox.sensor_interval_seconds", 5),
    ("EXPORT_DEFINITIONS_PATH", "/srv/defs", "saved_exports.definitions_path", Path("/srv/defs")),
    ("EXPORT_SMTP_HOST", "smtp.example.com", "notifications.smtp_host", "smtp.example.com"),
    ("EXPORT_SMTP_PORT", "465", "notifications.smtp_port", 465),
    ("EXPORT_SMTP_USERNAME", "exports", "notifications.smtp_username", "exports"),
    ("EXPORT_SMTP_PASSWORD", "pw", "notifications.smtp_password", SecretStr("pw")),
    ("EXPORT_SMTP_SECURITY", "ssl", "notifications.smtp_security", "ssl"),
    ("EXPORT_SMTP_FROM", "a@example.com", "notifications.smtp_from", "a@example.com"),
    ("EXPORT_SLACK_WEBHOOK_URL", "https://h/s", "notifications.slack_webhook_url", SecretStr("https://h/s")),
    ("EXPORT_DISCORD_WEBHOOK_URL", "https://h/d", "notifications.discord_webhook_url", SecretStr("https://h/d")),
    ("EXPORT_TELEGRAM_BOT_TOKEN", "1:x", "notifications.telegram_bot_token", SecretStr("1:x")),
    ("EXPORT_TELEGRAM_API_URL", "http://t", "notifications.telegram_api_url", "http://t"),
    ("EXPORT_NOTIFY_ATTEMPTS", "5", "notifications.notify_attempts", 5),
    ("EXPORT_NOTIFY_BACKOFF_SECONDS", "0.5", "notifications.notify_backoff_seconds", 0.5),
    ("EXPORT_SEALING_KEY", "k1,k2", "delivery.sealing_key", SecretStr("k1,k2")),
    ("EXPORT_DESTINATION_HOSTS", "*.acme.example", "delivery.destination_hosts", "*.acme.example"),
    ("EXPORT_DESTINATION_ALLOW_PRIVATE", "true", "delivery.destination_allow_private", True),
    ("EXPORT_DESTINATION_ALLOW_LOOPBACK", "1", "delivery.destination_allow_loopback", True),
    ("EXPORT_SFTP_KNOWN_HOSTS", "/k", "delivery.sftp_known_hosts", "/k"),
    ("EXPORT_SFTP_KEYS_DIR", "/keys", "delivery.sftp_keys_dir", "/keys"),
    ("EXPORT_FTPS_CA_FILE", "/ca.pem", "delivery.ftps_ca_file", "/ca.pem"),
    ("EXPORT_DESTINATION_S3_ENDPOINT", "http://s3", "delivery.destination_s3_endpoint", "http://s3"),
    ("EXPORT_GCS_PROJECT", "proj", "delivery.gcs_project", "proj"),
    ("EXPORT_DESTINATION_TIMEOUT", "7.5", "delivery.destination_timeout", 7.5),
    ("EXPORT_MAX_ROWS", "500", "limits.rows", 500),
    ("EXPORT_STALE_UPLOAD_HOURS", "6", "cleanup.stale_upload_hours", 6.0),
    ("EXPORT_STALE_UPLOAD_SCHEDULE", "15 */2 * * *", "cleanup.stale_upload_schedule", "15 */2 * * *"),
    ("EXPORT_STALE_UPLOAD_SWEEP", "running", "cleanup.stale_upload_sweep", "running"),
    ("EXPORT_ABORT_UPLOAD_DAYS", "3", "cleanup.abort_upload_days", 3),
    ("EXPORT_TENANTS_FILE", "/etc/exports/tenants.yaml", "service.tenants_file", "/etc/exports/tenants.yaml"),
    ("EXPORT_SERVICE_STATE", "/srv/state.sqlite", "service.state", "/srv/state.sqlite"),
    ("EXPORT_SERVICE_MAX_BODY_BYTES", "65536", "service.max_body_bytes", 65536),
    ("EXPORT_SERVICE_RATE_LIMIT_REQUESTS", "30", "service.rate_limit_requests", 30),
    ("EXPORT_SERVICE_RATE_LIMIT_SECONDS", "10", "service.rate_limit_seconds", 10.0),
    ("EXPORT_SERVICE_MONTHLY_QUOTA", "7", "service.monthly_quota", 7),
    ("EXPORT_SERVICE_PAGE_SIZE", "20", "service.page_size", 20),
    ("EXPORT_METRICS_SOURCE", "duckdb:///srv/m.db", "metric_store.source", "duckdb:///srv/m.db"),
    ("EXPORT_METRICS_TABLE", "public.rows", "metric_store.table", "public.rows"),
    ("EXPORT_METRICS_COLUMNS", "timestamp=ts", "metric_store.columns", "timestamp=ts"),
    ("EXPORT_METRICS_MEASURES", "entries,exits", "metric_store.measures", "entries,exits"),
    ("EXPORT_METRICS_DIMENSIONS", "age", "metric_store.dimensions", "age"),
    ("EXPORT_METRICS_STATEMENT_TIMEOUT", "30", "metric_store.statement_timeout", 30.0),
    ("EXPORT_METRICS_RETRIES", "5", "metric_store.retries", 5),
    ("EXPORT_RETENTION_DAYS", "7", "retention.retention_days", 7),
    ("EXPORT_RETENTION_SCHEDULE", "0 4 * * 1", "retention.retention_schedule", "0 4 * * 1"),
    ("EXPORT_RETENTION_SWEEP", "running", "retention.retention_sweep", "running"),
    ("EXPORT_MAX_CONCURRENT_RUNS", "25", "deployment.max_concurrent_runs", 25),
    ("EXPORT_TENANT_CONCURRENT_RUNS", "3", "deployment.tenant_concurrent_runs", 3),
    ("EXPORT_DESTINATION_HOST_CONCURRENT_RUNS", "1", "deployment.destination_host_concurrent_runs", 1),
    ("EXPORT_RUN_START_TIMEOUT", "300", "deployment.run_start_timeout", 300),
    ("EXPORT_RUN_MAX_RUNTIME", "0", "deployment.run_max_runtime", 0),
    ("EXPORT_RUN_MONITOR_INTERVAL", "30", "deployment.run_monitor_interval", 30),
    ("EXPORT_RUN_MAX_RESUME_ATTEMPTS", "1", "deployment.run_max_resume_attempts", 1),
    ("EXPORT_RUN_RETRIES", "0", "deployment.run_retries", 0),
    ("EXPORT_STATUS_SENSOR_RUNS_PER_TICK", "200", "throughput.status_sensor_runs_per_tick", 200),
]


def _at(settings, where: str):
    section, field = where.split(".")
    return getattr(getattr(settings, section), field)


@pytest.mark.parametrize("name, raw, where, expected", EVERY_VARIABLE, ids=[v[0] for v in EVERY_VARIABLE])
def test_each_variable_lands_in_its_field_with_its_type(monkeypatch, name, raw, where, expected):
    before = _at(get_settings(), where)
    monkeypatch.setenv(name, raw)
    value = _at(get_settings(), where)
    assert value == expected and type(value) is type(expected)
    assert value != before


def test_every_setting_is_in_the_list_above():
    """The request limits are tested with the validation that enforces them; one stands in."""
    named = {name for name, *_ in EVERY_VARIABLE}
    every = {env_name(section, field) for section in SECTIONS.values() for field in section.model_fields}
    limits = {env_name(LimitSettings, field) for field in LimitSettings.model_fields}
    assert every - named <= limits
    assert named <= every


def test_the_documented_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = get_settings()
    assert settings.bucket.bucket is None and settings.bucket.prefix == "exports"
    assert settings.bucket.url_ttl == 3600 and settings.bucket.part_size == 8 * MIB
    assert settings.metric_store.path == tmp_path / "export-pipeline" / "demo-store"
    assert settings.inbox.inbox_sensor == "running" and settings.inbox.sensor_interval_seconds == 30
    assert settings.notifications.smtp_port == 587 and settings.notifications.notify_attempts == 3
    assert settings.delivery.destination_allow_loopback is False
    assert settings.delivery.destination_timeout == 30
    assert settings.delivery.sealing_keys() is None


def test_the_demo_store_path_follows_xdg_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert demo_store_path() == tmp_path / "export-pipeline" / "demo-store"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert demo_store_path() == Path.home() / ".local" / "share" / "export-pipeline" / "demo-store"


def test_an_empty_variable_is_unset(monkeypatch):
    monkeypatch.setenv("EXPORT_URL_TTL", "")
    monkeypatch.setenv("EXPORT_SMTP_HOST", "")
    settings = get_settings()
    assert settings.bucket.url_ttl == 3600 and settings.notifications.smtp_host is None


@pytest.mark.parametrize("name, raw, message", [
    ("EXPORT_URL_TTL", "0", "EXPORT_URL_TTL: Input should be greater than or equal to 1"),
    ("EXPORT_URL_TTL", "604801", "EXPORT_URL_TTL: Input should be less than or equal to 604800"),
    ("EXPORT_PART_SIZE", "1024", "EXPORT_PART_SIZE: Input should be greater than or equal to 5242880"),
    ("EXPORT_SMTP_SECURITY", "tls", "EXPORT_SMTP_SECURITY: Input should be 'starttls', 'ssl' or 'none'"),
    ("EXPORT_INBOX_SENSOR", "paused", "EXPORT_INBOX_SENSOR: Input should be 'running' or 'stopped'"),
    ("EXPORT_DESTINATION_ALLOW_LOOPBACK", "maybe", "EXPORT_DESTINATION_ALLOW_LOOPBACK: Input should be a valid boolean"),
    ("EXPORT_BRAND_PRIMARY", "red", "EXPORT_BRAND_PRIMARY: String should match pattern"),
    ("EXPORT_BUCKET", "ab", "EXPORT_BUCKET: String should have at least 3 characters"),
    ("EXPORT_DESTINATION_TIMEOUT", "0", "EXPORT_DESTINATION_TIMEOUT: Input should be greater than 0"),
    ("EXPORT_BRAND_LOGO", "/no/such/logo.png", "EXPORT_BRAND_LOGO: Value error, names no file"),
    ("EXPORT_SERVICE_STATE", "postgresql://svc:pw-in-url@db/exports",
     "EXPORT_SERVICE_STATE: Value error, the URL must not carry a password: set PGPASSWORD"),
    ("EXPORT_SERVICE_STATE", "mysql://db/exports",
     "EXPORT_SERVICE_STATE: Value error, a SQLite file path or postgresql://host[:port]/database"),
])
def test_a_bad_value_is_refused_naming_the_variable_and_not_the_value(monkeypatch, name, raw, message):
    monkeypatch.setenv(name, raw)
    with pytest.raises(SettingsError) as refused:
        get_settings()
    assert message in str(refused.value)
    assert f"'{raw}'" not in str(refused.value) and "input_value" not in str(refused.value)
    assert "pw-in-url" not in str(refused.value)


def test_every_wrong_variable_is_named_at_once(monkeypatch):
    monkeypatch.setenv("EXPORT_URL_TTL", "soon")
    monkeypatch.setenv("EXPORT_SMTP_PORT", "0")
    monkeypatch.setenv("EXPORT_MAX_ROWS", "0")
    message = str(pytest.raises(SettingsError, get_settings).value)
    assert "EXPORT_URL_TTL: Input should be a valid integer" in message
    assert "EXPORT_SMTP_PORT: Input should be greater than or equal to 1" in message
    assert "EXPORT_MAX_ROWS: Input should be greater than or equal to 1" in message


def test_secrets_stay_hidden_in_reprs(monkeypatch):
    monkeypatch.setenv("EXPORT_SEALING_KEY", "the-sealing-key")
    monkeypatch.setenv("EXPORT_SMTP_PASSWORD", "the-smtp-password")
    settings = get_settings()
    assert "the-sealing-key" not in repr(settings) and "the-smtp-password" not in repr(settings)
    assert DeliverySettings.load().sealing_keys() == "the-sealing-key"


def _blocks(text: str) -> dict[str, str]:
    return dict(re.findall(r"<!-- settings: (\w+) -->\n(.*?)\n<!-- /settings -->", text, re.S))


def test_the_readme_has_every_area_s_table_as_generated():
    blocks = _blocks(README.read_text())
    assert set(blocks) == set(SECTIONS), "an area's table is missing from the README"
    for name, section in SECTIONS.items():
        assert blocks[name] == markdown_table(section), (
            f"README's {name} table is stale: python -m export_pipeline.settings --update README.md"
        )
    assert update_readme(README.read_text()) == README.read_text()


def test_every_field_appears_in_the_readme_with_its_variable_and_default():
    rows = {line.split("|")[1].strip(" `"): line for line in README.read_text().splitlines()
            if line.startswith("| `EXPORT_")}
    for section in SECTIONS.values():
        for field, info in section.model_fields.items():
            row = rows[env_name(section, field)]
            if info.json_schema_extra:
                default = info.json_schema_extra["shown_default"]
            else:
                default = f"`{info.default:g}`" if isinstance(info.default, float) else f"`{info.default}`"
            assert row.endswith(f"| {default} |"), (env_name(section, field), row)


def test_every_export_variable_the_readme_names_is_a_setting():
    every = {env_name(section, field) for section in SECTIONS.values() for field in section.model_fields}
    for name in set(re.findall(r"EXPORT_[A-Z0-9_]+", README.read_text())):
        if name.endswith("_"):  # a family, as in EXPORT_BRAND_*
            assert any(known.startswith(name) for known in every), name
        else:
            assert name in every, f"the README names {name}, which is no setting"


READS = re.compile(
    r"""os\.(?:environ\.get|getenv)\(\s*["']EXPORT_|os\.environ\[\s*["']EXPORT_\w+["']\s*\](?!\s*=)"""
    r"""|EnvVar(?:\.int)?\(\s*["']EXPORT_"""
)


def test_nothing_but_the_settings_module_reads_an_export_variable():
    readers = [
        str(path.relative_to(REPO)) for path in PACKAGE.rglob("*.py")
        if path != PACKAGE / "settings.py" and READS.search(path.read_text())
    ]
    assert readers == []


def test_the_generator_prints_each_table_between_its_markers(capsys):
    assert main(["--markdown", "bucket"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("<!-- settings: bucket -->\n| variable | meaning | default |")
    assert "| `EXPORT_URL_TTL` |" in printed and "<!-- /settings -->" in printed
    assert main([]) == 2


def test_the_generator_into_a_closed_pipe_ends_quietly():
    """`--markdown | head`: the reader gone, no BrokenPipeError traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "export_pipeline.settings", "--markdown"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.stderr == "" and done.returncode == 141, done.stderr


def test_update_rewrites_a_stale_table_only():
    stale = "intro\n<!-- settings: bucket -->\n| old |\n<!-- /settings -->\noutro\n"
    updated = update_readme(stale)
    assert updated == ("intro\n<!-- settings: bucket -->\n" + markdown_table(BucketSettings)
                       + "\n<!-- /settings -->\noutro\n")
