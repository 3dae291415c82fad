"""Build the ``Destination`` a request's destination asks for, unsealing its credentials."""

from __future__ import annotations

import os
import posixpath

from export_pipeline.destinations.base import Destination, PermanentDeliveryError
from export_pipeline.destinations.paths import object_key
from export_pipeline.destinations.sealing import Sealer, binding
from export_pipeline.destinations.settings import DestinationSettings
from export_pipeline.contract.models import (
    DEFAULT_PORTS, SECRET_FIELDS, DestinationSpec, DestinationType,
)


def describe_spec(spec: DestinationSpec) -> dict:
    """A request's destination as ``validate`` prints it: its fields, credentials left out."""
    shown = spec.model_dump(
        by_alias=True, exclude_none=True,
        exclude=set(SECRET_FIELDS),
    )
    shown["type"] = spec.type.value
    return shown


def spec_binding(spec: DestinationSpec, field: str) -> str:
    """What ``field``'s sealed value must have been sealed for (``sealing.binding``)."""
    return binding(spec.model_dump(mode="json", exclude=set(SECRET_FIELDS)), field)


def secret_texts(spec: DestinationSpec, sealer: Sealer | None) -> list[str]:
    """Each of the destination's credentials as it is written (sealed) and, where it unseals,
    as it is sent: what a failure message must not show."""
    texts = []
    for name in SECRET_FIELDS:
        value = getattr(spec, name)
        if value is None:
            continue
        texts.append(value.get_secret_value())
        if sealer is not None:
            try:
                texts.append(sealer.unseal(value.get_secret_value(), "", spec_binding(spec, name)))
            except PermanentDeliveryError:
                pass
    return texts


def open_destination(
    spec: DestinationSpec, file_name: str, settings: DestinationSettings,
    sealer: Sealer | None, where: str = "destination",
) -> Destination:
    def secret(value, name: str) -> str | None:
        if value is None:
            return None
        if sealer is None:
            raise PermanentDeliveryError(
                f"{where}.{name}: inline credentials need the sealing key (EXPORT_SEALING_KEY) "
                "configured for this deployment"
            )
        return sealer.unseal(value.get_secret_value(), f"{where}.{name}", spec_binding(spec, name))

    kind = spec.type
    if kind is DestinationType.s3:
        from export_pipeline.destinations.s3 import S3Destination

        return S3Destination(
            bucket=spec.aws_bucket, region=spec.aws_region,
            key=object_key(spec.path, file_name, path_may_name_file=True),
            access_key_id=secret(spec.aws_access_key_id, "aws_access_key_id"),
            secret_access_key=secret(spec.aws_secret_access_key, "aws_secret_access_key"),
            endpoint_url=settings.s3_endpoint_url, timeout=settings.timeout_seconds,
            part_size=settings.part_size_bytes,
        )
    if kind is DestinationType.sftp:
        from export_pipeline.destinations.sftp import SftpDestination

        return SftpDestination(
            server=spec.server, port=spec.port or DEFAULT_PORTS[kind], username=spec.username,
            password=secret(spec.password, "password"),
            key_path=_saved_key_path(spec.saved_key, settings, where),
            folder=spec.path, known_hosts_path=settings.known_hosts_path,
            host_policy=settings.host_policy, timeout=settings.timeout_seconds,
        )
    if kind in (DestinationType.ftp, DestinationType.ftps):
        from export_pipeline.destinations.ftp import FtpDestination

        return FtpDestination(
            server=spec.server, port=spec.port or DEFAULT_PORTS[kind], username=spec.username,
            password=secret(spec.password, "password"), folder=spec.path,
            tls=kind is DestinationType.ftps, ca_file=settings.ftps_ca_file,
            host_policy=settings.host_policy, timeout=settings.timeout_seconds,
        )
    if kind is DestinationType.gcs:
        from export_pipeline.destinations.gcs import GcsDestination

        return GcsDestination(
            bucket=spec.gcs_bucket, key=object_key(spec.path, file_name, path_may_name_file=False),
            project=settings.gcs_project, timeout=settings.timeout_seconds,
        )
    raise PermanentDeliveryError(f"{where}.type: {kind.value!r} is delivered by the export itself")


def _saved_key_path(name: str | None, settings: DestinationSettings, where: str) -> str | None:
    if name is None:
        return None
    if not settings.ssh_keys_dir:
        raise PermanentDeliveryError(
            f"{where}.savedKey: no saved keys are configured (EXPORT_SFTP_KEYS_DIR)"
        )
    path = os.path.join(settings.ssh_keys_dir, posixpath.basename(name))
    if not os.path.isfile(path):
        raise PermanentDeliveryError(f"{where}.savedKey: no saved key named {name!r}")
    return path
