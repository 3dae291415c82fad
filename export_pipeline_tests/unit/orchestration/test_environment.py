"""The export job's resources as the environment sets them: the CLI binds the job with these
alone, the code location with these and the inbox's and notifications'."""

import dagster as dg

from export_pipeline.orchestration.environment import env_int_or, env_or, export_resources
from export_pipeline.orchestration.jobs import export_job


def test_the_export_job_binds_with_its_own_resources_alone(monkeypatch, tmp_path):
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


def test_settings_come_from_the_environment_when_set(monkeypatch):
    monkeypatch.delenv("EXPORT_PREFIX", raising=False)
    monkeypatch.delenv("EXPORT_URL_TTL", raising=False)
    assert env_or("EXPORT_PREFIX", "exports") == "exports"
    assert env_int_or("EXPORT_URL_TTL", 3600) == 3600
    monkeypatch.setenv("EXPORT_PREFIX", "elsewhere")
    monkeypatch.setenv("EXPORT_URL_TTL", "600")
    assert env_or("EXPORT_PREFIX", "exports") == dg.EnvVar("EXPORT_PREFIX")
    assert env_int_or("EXPORT_URL_TTL", 3600) == dg.EnvVar.int("EXPORT_URL_TTL")
    storage = export_resources()["export_storage"]
    assert storage.prefix == dg.EnvVar("EXPORT_PREFIX")
