"""The export bucket as the service sees it: sign a download URL (SigV4) at each view, and
delete a file. Keys always come from the service's own records, never from a caller."""

from __future__ import annotations

from typing import Any

from export_pipeline.publishing.s3_upload import presign_get


class S3ExportFiles:
    def __init__(self, client: Any, presign_client: Any):
        self._client, self._presign = client, presign_client

    @classmethod
    def from_environment(cls) -> S3ExportFiles:
        """boto3's own configuration (endpoint, credentials, region), as the export job's."""
        import boto3
        from botocore.config import Config

        return cls(boto3.client("s3"), boto3.client("s3", config=Config(signature_version="s3v4")))

    def sign(self, bucket: str, key: str, expires_in: int) -> str:
        return presign_get(self._presign, bucket, key, expires_in)

    def delete(self, bucket: str, key: str) -> None:
        self._client.delete_object(Bucket=bucket, Key=key)
