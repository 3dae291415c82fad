"""The export bucket as the service sees it: sign a download URL (SigV4) at each view, and
delete a file. Keys always come from the service's own records, never from a caller."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from export_pipeline.publishing.preflight import check_writable
from export_pipeline.publishing.s3_upload import presign_get
from export_pipeline.service.api import FilesUnavailable


class S3ExportFiles:
    def __init__(self, client: Any, presign_client: Any):
        self._client, self._presign = client, presign_client

    @classmethod
    def from_environment(cls) -> S3ExportFiles:
        """boto3's own configuration (endpoint, credentials, region), as the export job's."""
        import boto3
        from botocore.config import Config

        return cls(boto3.client("s3"), boto3.client("s3", config=Config(signature_version="s3v4")))

    def check_writable(self, bucket: str, prefix: str) -> None:
        """Raise ``preflight.StorageUnavailable`` unless exports can be written and so deleted
        here: a service that starts without its bucket would take exports it can neither show
        nor delete."""
        check_writable(self._client, bucket, prefix)

    def sign(self, bucket: str, key: str, expires_in: int) -> str:
        try:
            return presign_get(self._presign, bucket, key, expires_in)
        except BotoCoreError as error:  # no credentials to sign with
            raise FilesUnavailable(str(error)) from None

    def delete(self, bucket: str, key: str) -> None:
        try:
            self._client.delete_object(Bucket=bucket, Key=key)
        except (BotoCoreError, ClientError) as error:
            raise FilesUnavailable(str(error)) from None
