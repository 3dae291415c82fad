"""The export job's resources initialised as a run initialises them: against the real S3
server, since the storage resource checks its bucket at start."""

from __future__ import annotations

import dagster as dg

from export_pipeline.orchestration.environment import export_resources


def test_non_default_url_ttl_and_prefix_reach_the_initialized_resource(monkeypatch, bucket):
    monkeypatch.setenv("EXPORT_PREFIX", "tenant-a/exports")
    monkeypatch.setenv("EXPORT_URL_TTL", "600")
    monkeypatch.setenv("EXPORT_PART_SIZE", str(6 * 1024 * 1024))
    storage = export_resources()["export_storage"]
    with dg.build_resources({"export_storage": storage}) as built:
        assert built.export_storage.bucket == bucket
        assert built.export_storage.prefix == "tenant-a/exports"
        assert built.export_storage.url_ttl_seconds == 600
        assert built.export_storage.part_size_bytes == 6 * 1024 * 1024
