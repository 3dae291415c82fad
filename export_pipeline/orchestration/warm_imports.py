"""What the run launcher's fork server imports once, so that no run imports it again: Dagster
with its SQLite storage, and the libraries every export needs. Nothing of this package's own
logic, which each run imports afresh. Imported only by the fork server."""

import gc

import boto3  # noqa: F401
import botocore.client  # noqa: F401
import dagster  # noqa: F401
import dagster._core.storage.event_log.sqlite  # noqa: F401
import dagster._core.storage.runs.sqlite  # noqa: F401
import dagster._grpc.impl  # noqa: F401
import polars  # noqa: F401
import pydantic  # noqa: F401
import pydantic_settings  # noqa: F401

# What the imports made stays put: each forked run then shares these pages with the server
# instead of copying them at its first garbage collection.
gc.freeze()
