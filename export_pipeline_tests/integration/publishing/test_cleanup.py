"""Clearing multipart uploads killed runs left open: the lifecycle rule (merged into the
bucket's rules) and the stale-upload sweep, as plain functions, as the Dagster job on its
schedule and as ``export-pipeline cleanup``, against the moto server."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta

import dagster as dg
import pytest

from export_pipeline.publishing import cleanup

HOUR = timedelta(hours=1)


def begin(s3_client, bucket: str, key: str) -> str:
    return s3_client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]


def initiated(s3_client, bucket: str) -> datetime:
    """When the uploads began, as the store reports it; "now" is passed relative to it (moto
    reports one fixed instant for every upload)."""
    return max(u["Initiated"] for u in s3_client.list_multipart_uploads(Bucket=bucket)["Uploads"])


def open_keys(s3_client, bucket: str) -> list[str]:
    return sorted(u["Key"] for u in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_the_sweep_aborts_only_old_uploads_under_the_export_prefix(s3_client, bucket):
    begin(s3_client, bucket, "exports/r1/a.csv")
    begin(s3_client, bucket, "exports/r2/b.csv")
    begin(s3_client, bucket, "exportsX/other.csv")  # shares the letters, not the folder
    begin(s3_client, bucket, "elsewhere/c.csv")
    now = initiated(s3_client, bucket) + HOUR

    assert cleanup.abort_stale_uploads(s3_client, bucket, "exports", 24 * HOUR, now) == []
    assert len(open_keys(s3_client, bucket)) == 4

    later = now + 25 * HOUR  # a day and an hour on: both exports uploads are stale
    aborted = cleanup.abort_stale_uploads(s3_client, bucket, "/exports/", 24 * HOUR, later)
    assert sorted(u.key for u in aborted) == ["exports/r1/a.csv", "exports/r2/b.csv"]
    assert all(u.initiated <= later - 24 * HOUR for u in aborted)
    assert open_keys(s3_client, bucket) == ["elsewhere/c.csv", "exportsX/other.csv"]


def test_the_sweep_spares_uploads_younger_than_the_threshold(s3_client, bucket):
    begin(s3_client, bucket, "exports/r1/a.csv")
    began = initiated(s3_client, bucket)
    assert cleanup.abort_stale_uploads(
        s3_client, bucket, "exports", 24 * HOUR, began + 24 * HOUR - timedelta(seconds=1)) == []
    assert open_keys(s3_client, bucket) == ["exports/r1/a.csv"]
    aborted = cleanup.abort_stale_uploads(
        s3_client, bucket, "exports", 24 * HOUR, began + 24 * HOUR + timedelta(seconds=1))
    assert [u.key for u in aborted] == ["exports/r1/a.csv"]


def test_the_sweep_pages_through_many_uploads(s3_client, bucket):
    for n in range(1003):  # the listing returns at most 1000 a page
        begin(s3_client, bucket, f"exports/r/{n:04d}.csv")
    aborted = cleanup.abort_stale_uploads(
        s3_client, bucket, "exports", HOUR, initiated(s3_client, bucket) + 2 * HOUR)
    assert len(aborted) == 1003
    assert open_keys(s3_client, bucket) == []


def rules(s3_client, bucket: str) -> dict[str, dict]:
    return {r["ID"]: r for r in
            s3_client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}


def test_the_lifecycle_rule_joins_the_bucket_rules_and_replaces_only_itself(s3_client, bucket):
    theirs = {"ID": "expire-tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled",
              "Expiration": {"Days": 7}}
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [theirs]})

    cleanup.put_abort_rule(s3_client, bucket, "exports", 1)
    cleanup.put_abort_rule(s3_client, bucket, "exports", 3)  # again, another age: replaced
    cleanup.put_abort_rule(s3_client, bucket, "team-b/exports", 2)  # another deployment's

    on_bucket = rules(s3_client, bucket)
    assert set(on_bucket) == {"expire-tmp", "export-pipeline-abort-incomplete-uploads:exports",
                              "export-pipeline-abort-incomplete-uploads:team-b/exports"}
    assert on_bucket["expire-tmp"]["Expiration"] == {"Days": 7}
    assert on_bucket["expire-tmp"]["Filter"] == {"Prefix": "tmp/"}
    ours = on_bucket["export-pipeline-abort-incomplete-uploads:exports"]
    assert ours["Filter"] == {"Prefix": "exports/"} and ours["Status"] == "Enabled"
    assert ours["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 3}
    assert on_bucket["export-pipeline-abort-incomplete-uploads:team-b/exports"][
        "AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}


def test_a_rule_on_a_bucket_without_rules(s3_client, bucket):
    cleanup.put_abort_rule(s3_client, bucket, "", 1)
    assert list(rules(s3_client, bucket)) == ["export-pipeline-abort-incomplete-uploads"]
    with pytest.raises(ValueError, match="days must be 1 or more"):
        cleanup.abort_rule("exports", 0)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export_pipeline", *args], env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)


def test_the_cleanup_commands(s3_client, bucket):
    done = cli("cleanup", "lifecycle", "--days", "2")
    assert done.returncode == 0, done.stderr
    assert rules(s3_client, bucket)["export-pipeline-abort-incomplete-uploads:exports"][
        "AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}

    begin(s3_client, bucket, "exports/r1/a.csv")
    begin(s3_client, bucket, "elsewhere/b.csv")
    done = cli("cleanup", "uploads", "--older-than-hours", "0")
    assert done.returncode == 0, done.stderr
    assert f"aborted s3://{bucket}/exports/r1/a.csv" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == (
        f"1 upload(s) under s3://{bucket}/exports/ begun more than 0 h ago aborted")
    assert open_keys(s3_client, bucket) == ["elsewhere/b.csv"]

    refused = cli("cleanup", "lifecycle", "--days", "0")
    assert refused.returncode == 2 and "--days: must be 1 or more" in refused.stderr


def test_the_sweep_job_and_its_schedule(s3_client, bucket, instance, monkeypatch):
    from export_pipeline.orchestration.environment import export_resources
    from export_pipeline.orchestration.upload_cleanup import stale_upload_schedule
    from export_pipeline.settings import CleanupSettings

    monkeypatch.setenv("EXPORT_STALE_UPLOAD_HOURS", "6")
    monkeypatch.setenv("EXPORT_STALE_UPLOAD_SCHEDULE", "*/15 * * * *")
    schedule = stale_upload_schedule(CleanupSettings())
    assert schedule.cron_schedule == "*/15 * * * *"

    begin(s3_client, bucket, "exports/r1/a.csv")
    begin(s3_client, bucket, "elsewhere/b.csv")
    job = dg.Definitions(jobs=[schedule.job], schedules=[schedule],
                         resources=export_resources()).resolve_job_def("stale_upload_sweep_job")
    with dg.build_schedule_context(instance=instance) as context:
        run_config = schedule.evaluate_tick(context).run_requests[0].run_config
    assert run_config["ops"]["abort_stale_uploads"]["config"] == {"older_than_hours": 6.0}
    swept = job.execute_in_process(run_config=run_config, instance=instance)
    assert swept.success  # moto dates every upload years back: stale by any threshold
    assert open_keys(s3_client, bucket) == ["elsewhere/b.csv"]


@pytest.mark.parametrize("setting, status", [
    (None, dg.DefaultScheduleStatus.STOPPED), ("running", dg.DefaultScheduleStatus.RUNNING),
])
def test_the_code_location_has_the_hourly_sweep(monkeypatch, setting, status):
    if setting is None:
        monkeypatch.delenv("EXPORT_STALE_UPLOAD_SWEEP", raising=False)
    else:
        monkeypatch.setenv("EXPORT_STALE_UPLOAD_SWEEP", setting)
    from export_pipeline.orchestration.definitions import build_definitions

    schedule = next(s for s in build_definitions().schedules if s.name == "stale_upload_sweep")
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.default_status == status
    assert schedule.job_name == "stale_upload_sweep_job"


def test_the_retention_rule_joins_the_bucket_rules_scoped_to_the_export_prefix(s3_client, bucket):
    cleanup.put_abort_rule(s3_client, bucket, "exports", 1)
    cleanup.put_retention_rule(s3_client, bucket, "exports", 30)
    cleanup.put_retention_rule(s3_client, bucket, "exports", 7)  # again: replaced
    on_bucket = rules(s3_client, bucket)
    assert set(on_bucket) == {"export-pipeline-abort-incomplete-uploads:exports",
                              "export-pipeline-expire-exports:exports"}
    ours = on_bucket["export-pipeline-expire-exports:exports"]
    assert ours["Filter"] == {"Prefix": "exports/"} and ours["Status"] == "Enabled"
    assert ours["Expiration"] == {"Days": 7}
    assert on_bucket["export-pipeline-abort-incomplete-uploads:exports"][
        "AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    with pytest.raises(ValueError, match="whole bucket|everything in the bucket"):
        cleanup.put_retention_rule(s3_client, bucket, "", 30)
    assert set(rules(s3_client, bucket)) == set(on_bucket)


def _put(s3_client, bucket: str, key: str) -> datetime:
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"x")
    return s3_client.head_object(Bucket=bucket, Key=key)["LastModified"]


def test_the_retention_sweep_deletes_only_old_files_under_the_export_prefix(s3_client, bucket):
    written = _put(s3_client, bucket, "exports/tenants/acme/a.csv")
    for key in ("exports/r1/b.csv", "elsewhere/c.csv", "exportsfoo/d.csv"):
        _put(s3_client, bucket, key)
    day = timedelta(days=1)
    # 29 days on: nothing is 30 days old yet
    assert cleanup.delete_expired_exports(s3_client, bucket, "exports", 30 * day, written + 29 * day) == []
    deleted = cleanup.delete_expired_exports(s3_client, bucket, "exports", 30 * day, written + 31 * day)
    assert sorted(deleted) == ["exports/r1/b.csv", "exports/tenants/acme/a.csv"]
    assert sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]) == [
        "elsewhere/c.csv", "exportsfoo/d.csv"]
    with pytest.raises(ValueError, match="everything in the bucket"):
        cleanup.delete_expired_exports(s3_client, bucket, "", 30 * day, written + 31 * day)


def test_the_retention_command_and_the_sweep_schedule(s3_client, bucket, instance, monkeypatch):
    done = cli("cleanup", "retention", "--days", "9")
    assert done.returncode == 0, done.stderr
    assert rules(s3_client, bucket)["export-pipeline-expire-exports:exports"]["Expiration"] == {"Days": 9}

    from export_pipeline.orchestration.environment import export_resources
    from export_pipeline.orchestration.upload_cleanup import retention_schedule
    from export_pipeline.settings import RetentionSettings

    monkeypatch.setenv("EXPORT_RETENTION_DAYS", "12")
    schedule = retention_schedule(RetentionSettings())
    assert schedule.cron_schedule == "30 3 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    with dg.build_schedule_context(instance=instance) as context:
        run_config = schedule.evaluate_tick(context).run_requests[0].run_config
    assert run_config["ops"]["delete_expired_exports"]["config"] == {"retention_days": 12}
    _put(s3_client, bucket, "exports/r1/young.csv")
    job = dg.Definitions(jobs=[schedule.job], schedules=[schedule],
                         resources=export_resources()).resolve_job_def("export_retention_sweep_job")
    swept = job.execute_in_process(run_config=run_config, instance=instance)
    assert swept.success
    assert [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]] == ["exports/r1/young.csv"]

    swept_now = cli("cleanup", "retention", "--sweep")
    assert swept_now.returncode == 0, swept_now.stderr
    assert swept_now.stdout.strip().splitlines()[-1] == (
        f"0 export file(s) under s3://{bucket}/exports/ older than 12 day(s) deleted")
