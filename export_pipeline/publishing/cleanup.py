"""Clearing the export prefix: multipart uploads nobody will finish, and export files past
their retention.

Multipart uploads nobody will finish: a run killed outright (SIGKILL, the OOM killer, a lost
machine) cannot abort its upload, and the store keeps, and bills, the parts it received.

Two ways to clear them, both limited to the export prefix: a bucket lifecycle rule
(``AbortIncompleteMultipartUpload``) that has the store abort uploads some days after they
began, and, for stores without lifecycle rules, a sweep that aborts uploads begun longer ago
than a threshold. Uploads under way are younger than any sensible threshold: an export's
upload lasts minutes at most.

Export files expire the same two ways: a lifecycle ``Expiration`` rule on the export prefix,
or a sweep deleting the files written longer ago than the retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

RULE_ID = "export-pipeline-abort-incomplete-uploads"
RETENTION_RULE_ID = "export-pipeline-expire-exports"


def rule_id(prefix: str, base: str = RULE_ID) -> str:
    """The rule's ID names its prefix, so deployments sharing a bucket keep their own rules."""
    folder = prefix.strip("/")
    return f"{base}:{folder}" if folder else base


def folder_prefix(prefix: str) -> str:
    """The key prefix of the export folder (``exports`` → ``exports/``; empty: the bucket)."""
    folder = prefix.strip("/")
    return f"{folder}/" if folder else ""


@dataclass(frozen=True)
class OpenUpload:
    key: str
    upload_id: str
    initiated: datetime


def open_uploads(client: Any, bucket: str, prefix: str) -> list[OpenUpload]:
    """Every multipart upload begun and neither completed nor aborted under ``prefix``."""
    uploads: list[OpenUpload] = []
    for page in client.get_paginator("list_multipart_uploads").paginate(
        Bucket=bucket, Prefix=folder_prefix(prefix)
    ):
        uploads += [OpenUpload(u["Key"], u["UploadId"], u["Initiated"]) for u in page.get("Uploads", [])]
    return uploads


def abort_stale_uploads(
    client: Any, bucket: str, prefix: str, older_than: timedelta, now: datetime
) -> list[OpenUpload]:
    """Abort the uploads under ``prefix`` begun before ``now - older_than``; the aborted ones.
    An upload that ended meanwhile (completed, or aborted by its own run) is skipped."""
    cutoff = now - older_than
    aborted = []
    for upload in open_uploads(client, bucket, prefix):
        if upload.initiated >= cutoff:
            continue
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=upload.key, UploadId=upload.upload_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise
            continue
        aborted.append(upload)
    return aborted


def abort_rule(prefix: str, days: int) -> dict[str, Any]:
    if days < 1:
        raise ValueError(f"days must be 1 or more, not {days}")
    return {
        "ID": rule_id(prefix),
        "Filter": {"Prefix": folder_prefix(prefix)},
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
    }


def lifecycle_rules(client: Any, bucket: str) -> list[dict[str, Any]]:
    try:
        return client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
            return []
        raise


def put_abort_rule(client: Any, bucket: str, prefix: str, days: int) -> list[dict[str, Any]]:
    """Set the abort rule on the bucket, other rules kept; the rules now on the bucket."""
    return put_rule(client, bucket, abort_rule(prefix, days))


def _retention_folder(prefix: str) -> str:
    folder = folder_prefix(prefix)
    if not folder:
        raise ValueError("the export prefix is empty: retention would delete everything in the "
                         "bucket; set EXPORT_PREFIX")
    return folder


def retention_rule(prefix: str, days: int) -> dict[str, Any]:
    if days < 1:
        raise ValueError(f"days must be 1 or more, not {days}")
    return {
        "ID": rule_id(prefix, RETENTION_RULE_ID),
        "Filter": {"Prefix": _retention_folder(prefix)},
        "Status": "Enabled",
        "Expiration": {"Days": days},
    }


def put_retention_rule(client: Any, bucket: str, prefix: str, days: int) -> list[dict[str, Any]]:
    """Set the rule expiring export files ``days`` after they are written, other rules kept;
    the rules now on the bucket. The store deletes them itself (S3 at the next midnight UTC
    after the age is reached, within a day or so)."""
    return put_rule(client, bucket, retention_rule(prefix, days))


def delete_expired_exports(
    client: Any, bucket: str, prefix: str, retention: timedelta, now: datetime
) -> list[str]:
    """Delete the files under ``prefix`` written before ``now - retention``; their keys. Only
    the export prefix is listed, never the rest of the bucket."""
    cutoff = now - retention
    expired = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=_retention_folder(prefix)
        )
        for item in page.get("Contents", [])
        if item["LastModified"] < cutoff
    ]
    for start in range(0, len(expired), 1000):  # S3 deletes at most 1000 keys per call
        answer = client.delete_objects(Bucket=bucket, Delete={
            "Objects": [{"Key": key} for key in expired[start:start + 1000]], "Quiet": True,
        })
        if answer.get("Errors"):
            error = answer["Errors"][0]
            raise RuntimeError(f"could not delete s3://{bucket}/{error['Key']}: {error['Code']}")
    return expired


def put_rule(client: Any, bucket: str, rule: dict[str, Any]) -> list[dict[str, Any]]:
    """Set ``rule`` on the bucket, keeping every other rule as it is (S3 replaces the whole
    configuration on each write); a previous version of the rule (same ID) is replaced. The
    rules now on the bucket."""
    rules = [r for r in lifecycle_rules(client, bucket) if r.get("ID") != rule["ID"]] + [rule]
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": rules}
    )
    return rules
