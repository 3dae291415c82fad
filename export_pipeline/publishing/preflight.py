"""Check, as a run starts, that export files can be written where they go, and say in one
line what is wrong when they cannot: a missing bucket, unknown or wrong credentials, no
permission, an endpoint that does not answer. Without it a run reads and combines all its
data first and then fails on the upload with two stack traces.

The check is the upload's own first and last calls (start a multipart upload under the export
prefix, abort it): it needs exactly the permissions an export needs (``s3:PutObject``,
``s3:AbortMultipartUpload``), where ``HeadBucket`` would need ``s3:ListBucket`` as well, and
S3 answers it with an error code (a HEAD answer has no body to name one).
"""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

_CREDENTIAL_HINT = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"


class StorageUnavailable(RuntimeError):
    """The export bucket cannot take files; the message is one line for a person."""


def check_writable(client: Any, bucket: str, prefix: str) -> None:
    """Raise ``StorageUnavailable`` unless ``client`` can upload under ``prefix`` in ``bucket``."""
    key = f"{prefix.strip('/')}/.preflight/{uuid.uuid4().hex}" if prefix.strip("/") else (
        f".preflight/{uuid.uuid4().hex}")
    try:
        upload = client.create_multipart_upload(Bucket=bucket, Key=key)
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
    except ClientError as error:
        raise StorageUnavailable(_refusal(error, bucket, prefix, client)) from None
    except NoCredentialsError:
        raise StorageUnavailable(f"no S3 credentials found: set {_CREDENTIAL_HINT}") from None
    except EndpointConnectionError:
        raise StorageUnavailable(f"cannot reach S3 at {_endpoint(client)}") from None
    except BotoCoreError as error:
        raise StorageUnavailable(f"cannot reach S3 at {_endpoint(client)}: {error}") from None


def _endpoint(client: Any) -> str:
    return client.meta.endpoint_url


def _refusal(error: ClientError, bucket: str, prefix: str, client: Any) -> str:
    """One line naming the likely cause, with S3's error code in brackets to search for."""
    code = error.response.get("Error", {}).get("Code", "")
    where = f"s3://{bucket}/{prefix.strip('/')}"
    if code == "NoSuchBucket":
        cause = f"bucket {bucket} does not exist at {_endpoint(client)}: check EXPORT_BUCKET"
    elif code in ("InvalidAccessKeyId", "InvalidClientTokenId"):
        cause = f"S3 does not know the access key: check {_CREDENTIAL_HINT}"
    elif code == "SignatureDoesNotMatch":
        cause = "S3 refused the secret key (the signature does not match): check AWS_SECRET_ACCESS_KEY"
    elif code in ("ExpiredToken", "TokenRefreshRequired", "InvalidToken"):
        cause = "the S3 session token has expired or is invalid: renew the credentials"
    elif code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        cause = (f"access denied writing to {where}: the credentials need s3:PutObject and "
                 "s3:AbortMultipartUpload there")
    else:
        message = error.response.get("Error", {}).get("Message") or "no message"
        cause = f"S3 refused a test upload to {where}: {message}"
    return f"{cause} ({code or 'error'})"
