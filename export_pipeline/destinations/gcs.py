"""A Google Cloud Storage bucket (google-cloud-storage).

Seed 003 sends no GCS credentials: the integration is enabled on our side, so the client uses
the service's Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``) and the
customer grants that service account write access to their bucket. With
``STORAGE_EMULATOR_HOST`` set the client talks to that emulator, anonymously.

The upload is resumable, in chunks: the object exists only once the last chunk is committed,
so a failed upload leaves no object (GCS discards an unfinished upload session after a week).
"""

from __future__ import annotations

import os
from typing import Any

import requests
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import GoogleAuthError
from google.cloud import storage
from google.resumable_media import common as media_common

from export_pipeline.destinations.base import (
    CountingReader,
    Destination,
    PermanentDeliveryError,
    Receipt,
    TransientDeliveryError,
    Upload,
)

CHUNK_SIZE = 8 * 1024 * 1024  # a multiple of 256 KiB, as GCS requires
_PERMANENT = (
    api_exceptions.Unauthorized, api_exceptions.Forbidden, api_exceptions.NotFound,
    api_exceptions.BadRequest,
)


class GcsDestination(Destination):
    def __init__(self, *, bucket: str, key: str, project: str | None, timeout: float):
        self.bucket, self.key, self.project, self.timeout = bucket, key, project, timeout

    def describe(self) -> dict[str, Any]:
        return {"type": "gcs", "bucket": self.bucket}

    def _client(self) -> storage.Client:
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            return storage.Client(project=self.project or "export-pipeline",
                                  credentials=AnonymousCredentials())
        return storage.Client(project=self.project)

    def deliver(self, upload: Upload) -> Receipt:
        where = f"gs://{self.bucket}/{self.key}"
        reader = CountingReader(upload.stream)
        try:
            blob = self._client().bucket(self.bucket).blob(self.key, chunk_size=CHUNK_SIZE)
            blob.upload_from_file(
                reader, size=upload.size, content_type=upload.content_type,
                timeout=self.timeout, retry=None,
            )
        except GoogleAuthError as error:
            raise PermanentDeliveryError(f"{where}: no usable GCS credentials: {error}") from None
        except _PERMANENT as error:
            raise PermanentDeliveryError(f"{where}: {error.message} ({error.code})") from None
        except api_exceptions.GoogleAPICallError as error:
            raise TransientDeliveryError(f"{where}: {error.message} ({error.code})") from None
        except media_common.InvalidResponse as error:
            status = getattr(error.response, "status_code", 0)
            kind = TransientDeliveryError if status >= 500 or status in (408, 429) else PermanentDeliveryError
            raise kind(f"{where}: the upload was refused ({status})") from None
        except (requests.RequestException, OSError) as error:
            raise TransientDeliveryError(f"{where}: transfer failed: {error}") from None
        remote = {"generation": blob.generation, "remoteSize": blob.size}
        if blob.crc32c:
            remote["crc32c"] = blob.crc32c
        return Receipt(self.describe(), where, reader.count, remote)
