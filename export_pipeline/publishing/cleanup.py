"""Multipart uploads nobody will finish: a run killed outright (SIGKILL, the OOM killer, a lost
machine) cannot abort its upload, and the store keeps, and bills, the parts it received.

Two ways to clear them, both limited to the export prefix: a bucket lifecycle rule
(``AbortIncompleteMultipartUpload``) that has the store abort uploads some days after they
began, and, for stores without lifecycle rules, a sweep that aborts uploads begun longer ago
than a threshold. Uploads under way are younger than any sensible threshold: an export's
upload lasts minutes at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

RULE_ID = "export-pipeline-abort-incomplete-uploads"


def rule_id(prefix: str) -> str:
    """The rule's ID names its prefix, so deployments sharing a bucket keep their own rules."""
    folder = prefix.strip("/")
    return f"{RULE_ID}:{folder}" if folder else RULE_ID


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
    """Set the abort rule on the bucket, keeping every other rule as it is (S3 replaces the
    whole configuration on each write); a previous version of the rule is replaced. The rules
    now on the bucket."""
    rule = abort_rule(prefix, days)
    rules = [r for r in lifecycle_rules(client, bucket) if r.get("ID") != rule["ID"]] + [rule]
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": rules}
    )
    return rules
