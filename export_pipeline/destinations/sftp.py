"""An SFTP server (paramiko), by password or by a saved key, host key checked.

The server's host key must be in the operator's known_hosts file: an unknown or changed key
is refused, never accepted on first use. The file is written under a hidden temporary name in
the target folder and renamed into place (the OpenSSH ``posix-rename`` extension, which
replaces an existing file atomically), so a reader never sees half a file; a server without it
gets the previous file moved aside instead (``replace_through_aside``). A failed transfer
removes its temporary file, over a fresh connection if the first one died.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

import paramiko

from export_pipeline import interrupts
from export_pipeline.destinations.base import (
    CountingReader,
    Destination,
    DeliveryError,
    PermanentDeliveryError,
    Receipt,
    TransientDeliveryError,
    Upload,
)
from export_pipeline.destinations.host_policy import HostPolicy
from export_pipeline.destinations.paths import (
    replace_through_aside,
    server_path,
    temporary_sibling,
)


class SftpDestination(Destination):
    def __init__(
        self, *, server: str, port: int, username: str, password: str | None,
        key_path: str | None, folder: str | None, known_hosts_path: str | None,
        host_policy: HostPolicy, timeout: float,
    ):
        self.server, self.port, self.username = server, port, username
        self.folder = folder
        self._password, self._key_path = password, key_path
        self.known_hosts_path = known_hosts_path
        self.host_policy, self.timeout = host_policy, timeout

    def describe(self) -> dict[str, Any]:
        return {"type": "sftp", "server": self.server, "port": self.port,
                "username": self.username, "auth": "key" if self._key_path else "password"}

    def _where(self) -> str:
        return f"sftp://{self.username}@{self.server}:{self.port}"

    def _connect(self) -> paramiko.SSHClient:
        if not self.known_hosts_path or not os.path.exists(self.known_hosts_path):
            raise PermanentDeliveryError(
                f"{self._where()}: no known_hosts file is configured "
                "(EXPORT_SFTP_KNOWN_HOSTS); host keys are never accepted unverified"
            )
        pkey = None
        if self._key_path:
            try:
                pkey = paramiko.PKey.from_path(self._key_path)
            except (OSError, paramiko.SSHException) as error:
                raise PermanentDeliveryError(f"{self._where()}: cannot load the saved key: {error}") from None
        sock = self.host_policy.connect(self.server, self.port, self.timeout)
        client = paramiko.SSHClient()
        client.load_host_keys(self.known_hosts_path)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                self.server, self.port, username=self.username, password=self._password,
                pkey=pkey, sock=sock, timeout=self.timeout, banner_timeout=self.timeout,
                auth_timeout=self.timeout, channel_timeout=self.timeout,
                look_for_keys=False, allow_agent=False,
            )
        except paramiko.BadHostKeyException:
            client.close()
            raise PermanentDeliveryError(
                f"{self._where()}: the server's host key does not match known_hosts"
            ) from None
        except paramiko.AuthenticationException:
            client.close()
            raise PermanentDeliveryError(
                f"{self._where()}: authentication refused (wrong username, password or key)"
            ) from None
        except paramiko.SSHException as error:
            client.close()
            if "not found in known_hosts" in str(error):
                raise PermanentDeliveryError(
                    f"{self._where()}: the server's host key is not in known_hosts"
                ) from None
            raise TransientDeliveryError(f"{self._where()}: {error}") from None
        except (OSError, EOFError) as error:
            client.close()
            raise TransientDeliveryError(f"{self._where()}: connection failed: {error}") from None
        return client

    def deliver(self, upload: Upload) -> Receipt:
        final = server_path(self.folder, upload.file_name)
        temporary = temporary_sibling(final, upload.attempt_tag)
        client = self._connect()
        try:
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(self.timeout)
            reader = CountingReader(upload.stream)
            try:
                sftp.putfo(reader, temporary, file_size=upload.size, confirm=True)
                interrupts.checkpoint()  # the rename puts the file at its path: not after a Ctrl-C
                try:
                    sftp.posix_rename(temporary, final)
                except OSError:  # no posix-rename: plain SFTP rename refuses to replace
                    replace_through_aside(
                        sftp.rename, sftp.remove, final, upload.attempt_tag, OSError
                    )
                size = sftp.stat(final).st_size
            except BaseException as error:
                self._remove_leftover(sftp, temporary)
                raise _classify(error, f"{self._where()}/{final.lstrip('/')}") from None
        finally:
            client.close()
        if size != reader.count:
            raise TransientDeliveryError(
                f"{self._where()}: {final} has {size} bytes after the transfer, not {reader.count}"
            )
        return Receipt(self.describe(), final, reader.count, {"remoteSize": size})

    def _remove_leftover(self, sftp: paramiko.SFTPClient, temporary: str) -> None:
        try:
            sftp.remove(temporary)
            return
        except (OSError, EOFError, paramiko.SSHException, socket.error):
            pass
        with contextlib.suppress(DeliveryError, OSError, EOFError, paramiko.SSHException):
            client = self._connect()
            try:
                client.open_sftp().remove(temporary)
            finally:
                client.close()


def _classify(error: BaseException, where: str) -> BaseException:
    if isinstance(error, DeliveryError):
        return error
    if isinstance(error, FileNotFoundError):
        return PermanentDeliveryError(f"{where}: no such folder on the server")
    if isinstance(error, PermissionError):
        return PermanentDeliveryError(f"{where}: permission denied")
    if isinstance(error, (OSError, EOFError, paramiko.SSHException)):
        return TransientDeliveryError(f"{where}: transfer failed: {str(error) or type(error).__name__}")
    return error
