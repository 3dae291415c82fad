"""The answer to an export request: the file's ``bucket``, ``key`` and ``signedUrl``, the
request id, and the row and byte counts; the CLI adds its run id and the deliveries. Built
here only, so the command line, the inbox's result objects and the notifications say the
same thing in the same words."""

from __future__ import annotations

from typing import Any

BODY_FIELDS = ("bucket", "key", "signedUrl")


def build_response(
    *,
    request_id: str | None,
    bucket: str,
    key: str,
    signed_url: str,
    rows: int,
    bytes: int,
    run_id: str | None = None,
    deliveries: list[dict] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {} if run_id is None else {"run_id": run_id}
    response.update(
        requestId=request_id, bucket=bucket, key=key, signedUrl=signed_url, rows=rows, bytes=bytes
    )
    if deliveries is not None:
        response["deliveries"] = deliveries
    return response


def response_body(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's ``body``: the file, as the request/answer pair names it."""
    return [{k: response[k] for k in BODY_FIELDS}]
