"""The customer's own S3 bucket (or any S3-compatible store), with the customer's keys.

The file goes up as a multipart upload (``s3_upload.upload_stream``): the object appears at
its key only when the upload completes and a failure aborts it, so there is no partial object
and no billed parts. The client never falls back to our own credentials or endpoint: keys
come from the request, the endpoint from the operator's setting only.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from export_pipeline.destinations.base import (
    DeliveryError,
    Destination,
    PermanentDeliveryError,
    Receipt,
    TransientDeliveryError,
    Upload,
)
from export_pipeline.publishing.s3_upload import upload_stream

_TRANSIENT_CODES = {
    "RequestTimeout", "RequestTimeTooSkewed", "SlowDown", "InternalError", "ServiceUnavailable",
    "Throttling", "ThrottlingException", "RequestLimitExceeded",
}
_REASONS = {
    "InvalidAccessKeyId": "the access key id is not known to the store (wrong aws_access_key_id)",
    "SignatureDoesNotMatch": "the secret access key is wrong (aws_secret_access_key)",
    "AccessDenied": "access denied: these credentials may not write to the bucket",
    "NoSuchBucket": "no such bucket",
    "PermanentRedirect": "the bucket is in another region than aws_region",
    "AuthorizationHeaderMalformed": "the bucket is in another region than aws_region",
}


class S3Destination(Destination):
    def __init__(
        self, *, bucket: str, region: str, key: str, access_key_id: str,
        secret_access_key: str, endpoint_url: str | None, timeout: float, part_size: int,
    ):
        self.bucket, self.region, self.key = bucket, region, key
        self.endpoint_url = endpoint_url
        self._client = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=None,
        ).client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                signature_version="s3v4",
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"mode": "standard", "max_attempts": 2},
                # Never the AWS_ENDPOINT_URL_S3 of our own bucket: only the operator's setting.
                ignore_configured_endpoint_urls=True,
            ),
        )
        self.part_size = part_size

    def describe(self) -> dict[str, Any]:
        described = {"type": "s3", "bucket": self.bucket, "region": self.region}
        if self.endpoint_url:
            described["endpoint"] = self.endpoint_url
        return described

    def deliver(self, upload: Upload) -> Receipt:
        chunks = iter(lambda: upload.stream.read(1024 * 1024), b"")
        try:
            result = upload_stream(
                self._client, self.bucket, self.key, chunks, upload.content_type, self.part_size
            )
        except ClientError as error:
            raise classify_client_error(error, f"s3://{self.bucket}/{self.key}") from None
        except BotoCoreError as error:
            raise TransientDeliveryError(f"s3://{self.bucket}/{self.key}: {error}") from None
        remote = {"etag": result.etag.strip('"')}
        if result.version_id:
            remote["versionId"] = result.version_id
        return Receipt(self.describe(), f"s3://{self.bucket}/{self.key}", result.bytes, remote)


def classify_client_error(error: ClientError, where: str) -> DeliveryError:
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    reason = _REASONS.get(code) or error.response.get("Error", {}).get("Message") or code
    message = f"{where}: {reason} ({code or status})"
    if code in _TRANSIENT_CODES or status >= 500:
        return TransientDeliveryError(message)
    return PermanentDeliveryError(message)
