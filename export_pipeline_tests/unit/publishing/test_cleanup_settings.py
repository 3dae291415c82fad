"""The clean-up settings refuse bad values by name, before any schedule is built."""

from __future__ import annotations

import pydantic
import pytest

from export_pipeline.publishing.cleanup import abort_rule, folder_prefix, rule_id
from export_pipeline.settings import CleanupSettings


@pytest.mark.parametrize("name, value", [
    ("EXPORT_STALE_UPLOAD_HOURS", "0"), ("EXPORT_STALE_UPLOAD_HOURS", "a day"),
    ("EXPORT_STALE_UPLOAD_SCHEDULE", "hourly"), ("EXPORT_STALE_UPLOAD_SWEEP", "on"),
    ("EXPORT_ABORT_UPLOAD_DAYS", "0"),
])
def test_bad_values_are_refused_naming_the_setting(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(pydantic.ValidationError) as caught:
        CleanupSettings()
    assert name.removeprefix("EXPORT_").lower() in str(caught.value)


def test_defaults(monkeypatch):
    for name in ("HOURS", "SCHEDULE", "SWEEP"):
        monkeypatch.delenv(f"EXPORT_STALE_UPLOAD_{name}", raising=False)
    monkeypatch.delenv("EXPORT_ABORT_UPLOAD_DAYS", raising=False)
    settings = CleanupSettings()
    assert (settings.stale_upload_hours, settings.stale_upload_schedule,
            settings.stale_upload_sweep, settings.abort_upload_days) == (24, "0 * * * *", "stopped", 1)


@pytest.mark.parametrize("prefix, folder, rule", [
    ("exports", "exports/", "export-pipeline-abort-incomplete-uploads:exports"),
    ("/a/b/", "a/b/", "export-pipeline-abort-incomplete-uploads:a/b"),
    ("", "", "export-pipeline-abort-incomplete-uploads"),
])
def test_the_rule_is_scoped_to_the_export_folder(prefix, folder, rule):
    assert folder_prefix(prefix) == folder and rule_id(prefix) == rule
    assert abort_rule(prefix, 2)["Filter"] == {"Prefix": folder}
    assert abort_rule(prefix, 2)["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
