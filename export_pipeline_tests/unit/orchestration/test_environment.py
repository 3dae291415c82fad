"""The resources as the settings make them: the CLI binds the export job with these alone, the
code location with these and the inbox's and notifications'."""

import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import dagster as dg
import pytest

from export_pipeline.orchestration.environment import export_resources, from_settings
from export_pipeline.orchestration.jobs import export_job
from export_pipeline.settings import BucketSettings, SettingsError, get_settings

EXAMPLE_DEFINITIONS = Path(__file__).parents[3] / "export_pipeline" / "examples" / "definitions"


@pytest.fixture(autouse=True)
def no_export_settings(monkeypatch):
    """Each test starts from the documented defaults, whatever the shell running it set."""
    for name in list(os.environ):
        if name.startswith("EXPORT_"):
            monkeypatch.delenv(name)


def test_the_export_job_binds_with_its_own_resources_alone(monkeypatch):
    monkeypatch.setenv("EXPORT_BUCKET", "some-bucket")
    job = dg.Definitions(jobs=[export_job], resources=export_resources()).resolve_job_def(
        "export_job"
    )
    assert job.name == "export_job"
    assert export_job.required_resource_keys <= set(export_resources())


def test_the_code_location_binds_the_same_export_resources(monkeypatch):
    monkeypatch.setenv("EXPORT_BUCKET", "some-bucket")
    from export_pipeline.orchestration.definitions import build_definitions

    resources = build_definitions().resources
    assert set(export_resources()) <= set(resources)
    assert {"request_inbox", "notifier"} <= set(resources)


def test_a_setting_the_environment_sets_reaches_dagster_as_an_env_var(monkeypatch):
    storage = export_resources()["export_storage"]
    assert storage.prefix == "exports" and storage.url_ttl_seconds == 3600
    assert storage.bucket == dg.EnvVar("EXPORT_BUCKET")  # required: the run names it if unset
    monkeypatch.setenv("EXPORT_PREFIX", "elsewhere")
    monkeypatch.setenv("EXPORT_URL_TTL", "600")
    storage = export_resources()["export_storage"]
    assert storage.prefix == dg.EnvVar("EXPORT_PREFIX")
    assert storage.url_ttl_seconds == dg.EnvVar.int("EXPORT_URL_TTL")


def test_flags_and_fractions_reach_the_resource_as_validated_values(monkeypatch):
    monkeypatch.setenv("EXPORT_DESTINATION_ALLOW_LOOPBACK", "yes")
    monkeypatch.setenv("EXPORT_DESTINATION_TIMEOUT", "2.5")
    destinations = export_resources()["destinations"]
    assert destinations.allow_loopback is True and destinations.allow_private_networks is False
    assert destinations.timeout_seconds == 2.5


def test_secrets_reach_the_resources_as_env_vars_only(monkeypatch):
    monkeypatch.setenv("EXPORT_BUCKET", "some-bucket")
    monkeypatch.setenv("EXPORT_SMTP_PASSWORD", "hunter2-smtp")
    monkeypatch.setenv("EXPORT_SEALING_KEY", "not-even-checked-here")
    from export_pipeline.orchestration.definitions import build_definitions

    resources = build_definitions().resources
    assert resources["notifier"].smtp_password == dg.EnvVar("EXPORT_SMTP_PASSWORD")
    assert resources["notifier"].telegram_bot_token is None
    assert resources["destinations"].sealing_key == dg.EnvVar("EXPORT_SEALING_KEY")
    for resource in resources.values():
        if isinstance(resource, dg.ConfigurableResource):
            assert "hunter2" not in repr(resource._get_non_default_public_field_values())


def test_the_inbox_bucket_defaults_to_the_export_bucket(monkeypatch):
    from export_pipeline.orchestration.definitions import build_definitions

    assert build_definitions().resources["request_inbox"].bucket == dg.EnvVar("EXPORT_BUCKET")
    monkeypatch.setenv("EXPORT_INBOX_BUCKET", "inbox-bucket")
    assert build_definitions().resources["request_inbox"].bucket == dg.EnvVar("EXPORT_INBOX_BUCKET")


def test_the_sensor_settings_shape_the_sensors(monkeypatch):
    from export_pipeline.orchestration.definitions import build_definitions

    monkeypatch.setenv("EXPORT_INBOX_SENSOR", "Stopped")
    monkeypatch.setenv("EXPORT_SENSOR_INTERVAL_SECONDS", "45")
    sensor = build_definitions().resolve_sensor_def("request_inbox_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.minimum_interval_seconds == 45


def test_every_resource_field_is_described_in_the_ui(monkeypatch):
    monkeypatch.setenv("EXPORT_BUCKET", "some-bucket")
    from export_pipeline.orchestration.definitions import build_definitions

    undescribed = []
    for key, resource in build_definitions().resources.items():
        if not isinstance(resource, dg.ConfigurableResource) or type(resource).__module__.startswith("dagster"):
            continue
        fields = resource.get_resource_definition().config_schema.config_type.fields
        undescribed += [f"{key}.{name}" for name, field in fields.items() if not field.description]
    assert undescribed == []
    storage = build_definitions().resources["export_storage"]
    ttl = storage.get_resource_definition().config_schema.config_type.fields["url_ttl_seconds"]
    assert "`EXPORT_URL_TTL`" in ttl.description


def test_a_bad_setting_fails_the_load_naming_the_variable_not_the_import(monkeypatch):
    monkeypatch.setenv("EXPORT_URL_TTL", "an hour")
    monkeypatch.setenv("EXPORT_SMTP_PORT", "70000")
    from export_pipeline.orchestration import definitions

    importlib.reload(definitions)  # importing reads no setting
    with pytest.raises(SettingsError) as failure:
        definitions.defs()
    assert "EXPORT_URL_TTL: Input should be a valid integer" in str(failure.value)
    assert "EXPORT_SMTP_PORT: Input should be less than or equal to 65535" in str(failure.value)
    assert "an hour" not in str(failure.value)


def test_loading_the_code_location_warns_about_nothing(monkeypatch):
    monkeypatch.setenv("EXPORT_BUCKET", "some-bucket")
    monkeypatch.setenv("EXPORT_DEFINITIONS_PATH", str(EXAMPLE_DEFINITIONS))
    from export_pipeline.orchestration import definitions

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        repository = importlib.reload(definitions).defs().get_repository_def()
    assert repository.has_schedule_def("saved_export_daily_entries_schedule")
    assert [str(w.message) for w in caught] == []


def test_from_settings_keeps_the_validated_default_when_the_variable_is_unset():
    bucket = BucketSettings.load()
    assert from_settings(bucket, "url_ttl") == 3600
    assert from_settings(bucket, "bucket") is None
    assert from_settings(bucket, "bucket", required=True) == dg.EnvVar("EXPORT_BUCKET")
    assert from_settings(get_settings().metric_store, "path").endswith("demo-store")


def test_loading_the_code_location_imports_neither_the_demo_nor_the_heavy_libraries():
    """A code server loads the definitions before it answers anything: the demo (production
    code never uses it) and the libraries only a run's writers and deliveries need stay out."""
    unwanted = ("export_pipeline.demo", "reportlab", "matplotlib", "paramiko", "google.cloud",
                "asyncssh", "moto", "dagster_aws")
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, export_pipeline.orchestration.definitions as d; "
         "d.defs().get_repository_def(); print('\\n'.join(sys.modules))"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    modules = loaded.stdout.split()
    assert "export_pipeline.orchestration.definitions" in modules
    assert [m for m in modules if m.startswith(unwanted)] == []
