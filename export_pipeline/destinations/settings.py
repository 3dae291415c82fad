"""The operator's settings for deliveries (the ``DestinationsResource`` fills them from the
environment); nothing here comes from a request."""

from __future__ import annotations

from dataclasses import dataclass, field

from export_pipeline.destinations.host_policy import HostPolicy


@dataclass(frozen=True)
class DestinationSettings:
    host_policy: HostPolicy = field(default_factory=HostPolicy)
    known_hosts_path: str | None = None
    """OpenSSH known_hosts file SFTP host keys are checked against; unknown keys are refused."""
    ssh_keys_dir: str | None = None
    """Folder of private keys that a request's ``savedKey`` names (file name = key name)."""
    s3_endpoint_url: str | None = None
    """Endpoint of customer S3 deliveries (an S3-compatible store); None is AWS itself."""
    ftps_ca_file: str | None = None
    """CA bundle FTPS certificates are verified with; None is the system's."""
    gcs_project: str | None = None
    timeout_seconds: float = 30.0
    part_size_bytes: int = 16 * 1024 * 1024
