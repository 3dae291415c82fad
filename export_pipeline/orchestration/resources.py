"""Dagster resources: where metric data comes from and where export files go.

Their values come from ``export_pipeline.settings`` (see ``environment``), and so do the
descriptions the UI shows for the fields that carry a setting. S3 endpoint and
credentials are not settings of ours: boto3 reads them as it always does
(``AWS_ENDPOINT_URL_S3``, ``AWS_PROFILE``, the credentials chain), so AWS, MinIO, R2 and a
local server work alike.
"""


import threading
from abc import ABC, abstractmethod
from typing import Any, Optional

import boto3
import dagster as dg
from botocore.config import Config
from pydantic import Field, PrivateAttr

from export_pipeline.destinations.host_policy import HostPolicy
from export_pipeline.destinations.sealing import Sealer
from export_pipeline.destinations.settings import DestinationSettings
from export_pipeline.publishing.preflight import check_writable
from export_pipeline.publishing.s3_upload import presign_get
from export_pipeline.store.source import MetricSource
from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline.formats.branding import Branding
from export_pipeline.settings import (
    BrandingSettings,
    BucketSettings,
    DeliverySettings,
    MetricStoreSettings,
    resource_field,
)


_SESSION_LOCK = threading.Lock()


class S3Connection(dg.ConfigurableResource):
    """How boto3 reaches S3. Left unset, every field is boto3's own configuration
    (``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``, ``AWS_PROFILE``, the credentials chain).

    The fields and retry behaviour of dagster-aws's ``S3Resource``, without importing
    dagster-aws: its package loads every AWS integration it ships, which was half of what
    loading the code location cost a code server and each run's process."""

    region_name: Optional[str] = Field(None, description="region; unset: boto3's")
    endpoint_url: Optional[str] = Field(None, description="S3 endpoint; unset: boto3's (AWS or `AWS_ENDPOINT_URL_S3`)")
    profile_name: Optional[str] = Field(None, description="AWS profile; unset: boto3's")
    max_attempts: int = Field(5, description="attempts per request, the first included (boto3's standard retries)")
    use_ssl: bool = Field(True, description="whether to use HTTPS")
    verify: Optional[bool] = Field(None, description="whether to verify TLS certificates; unset: verify")
    aws_access_key_id: Optional[str] = Field(None, description="access key id; unset: the credentials chain")
    aws_secret_access_key: Optional[str] = Field(None, description="secret access key; unset: the credentials chain")
    aws_session_token: Optional[str] = Field(None, description="session token; unset: the credentials chain")

    _session: Any = PrivateAttr(default=None)

    def get_client(self, config: Optional[Config] = None) -> Any:
        """An S3 client: standard retries, ``max_attempts`` of them, merged with ``config``.
        Clients of one resource share its boto3 session, which loads S3's service model once."""
        settings = Config(retries={"max_attempts": self.max_attempts, "mode": "standard"})
        with _SESSION_LOCK:  # a boto3 session is not thread-safe
            if self._session is None:
                self._session = boto3.session.Session(profile_name=self.profile_name)
            return self._session.client(
                "s3",
                region_name=self.region_name,
                endpoint_url=self.endpoint_url,
                use_ssl=self.use_ssl,
                verify=self.verify,
                aws_access_key_id=self.aws_access_key_id,
                aws_secret_access_key=self.aws_secret_access_key,
                aws_session_token=self.aws_session_token,
                config=settings.merge(config) if config else settings,
            )


def s3_field() -> Any:
    return Field(description="how boto3 reaches S3 (`S3Connection`)")


class MetricSourceResource(dg.ConfigurableResource, ABC):
    """Any metric store; ops depend on this, so other sources plug in under the same key."""

    @abstractmethod
    def get_source(self) -> MetricSource: ...


class ParquetMetricStore(MetricSourceResource):
    """A folder of Parquet files in the documented layout."""

    path: str = resource_field(MetricStoreSettings, "path")

    def get_source(self) -> MetricSource:
        return ParquetMetricSource(self.path)


class SqlMetricStore(MetricSourceResource):
    """A table of a SQL engine (DuckDB file, PostgreSQL…); the fetch runs in the engine.

    One connection per run (opened on first use, closed when the run's resources are torn
    down, cancelling any statement still running). No credentials here: PostgreSQL takes
    ``PGUSER``/``PGPASSWORD`` from the environment, as libpq does.
    """

    url: str = Field(description="duckdb:///path/file.db or postgresql://host[:port]/database (no password)")
    table: str = Field(default="metrics", description="table or view, optionally schema.table")
    columns: str = Field(default="", description="timestamp=COL,entity_id=COL,entity_type=COL")
    measures: str = Field(default="", description="measure columns, comma-separated (empty: every numeric column)")
    dimensions: str = Field(default="", description="dimension columns, comma-separated (empty: every string column)")
    statement_timeout_seconds: float = Field(default=600.0, description="the engine stops a longer query (0: never)")
    retries: int = Field(default=3, description="retries of a transient engine error, backoff 0.5 s doubling")

    _source: Any = PrivateAttr(default=None)

    def get_source(self) -> MetricSource:
        if self._source is None:
            from export_pipeline.store.sql import ColumnMapping, SqlMetricSource

            self._source = SqlMetricSource(
                self.url, self.table,
                ColumnMapping.parse(self.columns, self.measures, self.dimensions),
                statement_timeout_seconds=self.statement_timeout_seconds, retries=self.retries,
            )
        return self._source

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._source is not None:
            self._source.close()


class ExportStorage(dg.ConfigurableResource):
    """The export bucket: streamed uploads, and download links signed with SigV4."""

    s3: dg.ResourceDependency[S3Connection] = s3_field()
    bucket: str = resource_field(BucketSettings, "bucket", required=True)
    prefix: str = resource_field(BucketSettings, "prefix")
    url_ttl_seconds: int = resource_field(BucketSettings, "url_ttl")
    part_size_bytes: int = resource_field(BucketSettings, "part_size")

    _clients: dict[str, Any] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Build both clients as the run starts: a first boto3 client loads S3's service model,
        better spent while the store is read than after the file is combined.
        Then check the bucket takes files (``preflight``), so a missing bucket or wrong
        credentials fail the run before anything is read, in one line. The check goes
        through the SigV4 client: the same endpoint and credentials as the upload client, but
        short timeouts and two attempts, so an endpoint that does not answer is reported in
        seconds rather than after the upload client's five patient attempts.

        Only in a run: a sensor (the notifications sign links) builds its resources on every
        tick, where the check would cost a request each time and fail ticks that upload
        nothing; there the clients are built when first used."""
        if context.run is None:
            return
        self.get_client()
        check_writable(self.get_presign_client(), self.bucket, self.prefix)

    def get_client(self) -> Any:
        if "upload" not in self._clients:
            self._clients["upload"] = self.s3.get_client()
        return self._clients["upload"]

    def signed_url(self, bucket: str, key: str) -> str:
        """A download link for ``key``, signed now and valid for ``url_ttl_seconds``."""
        return presign_get(self.get_presign_client(), bucket, key, self.url_ttl_seconds)

    def get_presign_client(self) -> Any:
        if "presign" not in self._clients:
            self._clients["presign"] = self._sigv4_client()
        return self._clients["presign"]

    def _sigv4_client(self) -> Any:
        """botocore would presign with SigV2 by default, so links are signed with SigV4. The
        client's only call over the network is the bucket check (signing is local)."""
        return self.s3.get_client(Config(
            signature_version="s3v4", connect_timeout=5, read_timeout=20,
            retries={"max_attempts": 2, "mode": "standard"},
        ))


class ReportBranding(dg.ConfigurableResource):
    """How PDF reports look: set per deployment (``EXPORT_BRAND_*``), never per request."""

    name: str = resource_field(BrandingSettings, "name")
    logo_path: str = resource_field(BrandingSettings, "logo")
    primary_color: str = resource_field(BrandingSettings, "primary")
    accent_color: str = resource_field(BrandingSettings, "accent")

    def get_branding(self) -> Branding:
        return Branding(
            name=self.name or None, logo_path=self.logo_path or None,
            primary_color=self.primary_color, accent_color=self.accent_color,
        )


class DestinationsResource(dg.ConfigurableResource):
    """The operator's rules and keys for deliveries beyond the export bucket.

    ``sealing_key`` unseals inline credentials inside the deliver op; keep it in the
    environment (``EnvVar``), never in run config.
    """

    allowed_hosts: str = resource_field(DeliverySettings, "destination_hosts")
    allow_private_networks: bool = resource_field(DeliverySettings, "destination_allow_private")
    allow_loopback: bool = resource_field(DeliverySettings, "destination_allow_loopback")
    sftp_known_hosts: Optional[str] = resource_field(DeliverySettings, "sftp_known_hosts")
    sftp_keys_dir: Optional[str] = resource_field(DeliverySettings, "sftp_keys_dir")
    s3_endpoint_url: Optional[str] = resource_field(DeliverySettings, "destination_s3_endpoint")
    ftps_ca_file: Optional[str] = resource_field(DeliverySettings, "ftps_ca_file")
    gcs_project: Optional[str] = resource_field(DeliverySettings, "gcs_project")
    sealing_key: Optional[str] = resource_field(DeliverySettings, "sealing_key")
    timeout_seconds: float = resource_field(DeliverySettings, "destination_timeout")

    def settings(self) -> DestinationSettings:
        return DestinationSettings(
            host_policy=HostPolicy(
                allowed_hosts=tuple(h.strip() for h in self.allowed_hosts.split(",") if h.strip()),
                allow_private=self.allow_private_networks,
                allow_loopback=self.allow_loopback,
            ),
            known_hosts_path=self.sftp_known_hosts or None,
            ssh_keys_dir=self.sftp_keys_dir or None,
            s3_endpoint_url=self.s3_endpoint_url or None,
            ftps_ca_file=self.ftps_ca_file or None,
            gcs_project=self.gcs_project or None,
            timeout_seconds=self.timeout_seconds,
        )

    def sealer(self) -> Optional[Sealer]:
        return Sealer(self.sealing_key) if self.sealing_key else None
