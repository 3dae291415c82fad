"""The one interface every destination kind implements, its errors and its receipt.

A destination receives the file as a readable stream of known size and must make it appear
at its final path atomically (a reader never sees half a file) and remove whatever it left
behind when it fails. Errors are classified so the deliver op knows whether to retry:
``TransientDeliveryError`` (connection reset, timeout, 5xx) or ``PermanentDeliveryError``
(auth refused, no such bucket, host not allowed). Messages never carry credentials.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from export_pipeline import interrupts


class DeliveryError(Exception):
    """A delivery that did not happen; ``str()`` is safe to show and store."""


class TransientDeliveryError(DeliveryError):
    """Worth another try: the far side or the network failed, not the request."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: wrong credentials, missing bucket, refused host, bad path."""


@dataclass(frozen=True)
class Receipt:
    """What a delivery did, as recorded in the run: never a credential."""

    destination: dict[str, Any]
    remote_path: str
    bytes: int
    remote: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "remotePath": self.remote_path,
            "bytes": self.bytes,
            **self.remote,
        }


@dataclass(frozen=True)
class Upload:
    """The file to deliver: a stream (read once), its size, name and content type."""

    stream: BinaryIO
    size: int
    file_name: str
    content_type: str
    attempt_tag: str


class Destination(ABC):
    """One place a file can be delivered to."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The destination for receipts and logs, without secrets."""

    @abstractmethod
    def deliver(self, upload: Upload) -> Receipt:
        """Put ``upload`` at its final path atomically, or raise a ``DeliveryError``."""


class CountingReader:
    """Wraps a stream to count what was read, so a receipt states the bytes actually sent.

    Each read is a checkpoint (``interrupts.checkpoint``): a command's signal whose raise was
    lost stops the transfer at the next read, before the file can appear at its final path."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        interrupts.checkpoint()
        data = self._stream.read(size)
        self.count += len(data)
        return data

    def tell(self) -> int:
        """Resumable GCS uploads ask where the stream stands; it started at 0."""
        return self.count
