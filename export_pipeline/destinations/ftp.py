"""An FTP server (ftplib), plain or over explicit TLS (``ftps``: AUTH TLS, then PROT P so the
file is encrypted too). Certificates are verified against the system's CAs or the operator's
bundle, never skipped.

The control connection goes to an address the host policy vetted, and passive-mode data
connections go to that same address whatever the server's PASV reply says (ftplib's default),
so a server cannot point us elsewhere. The file is stored under a hidden temporary name and
renamed into place (RNFR/RNTO) once its size matches what was sent, the previous file moved
aside first where the server will not rename over it (``replace_through_aside``); a failed
transfer deletes the temporary file.
"""

from __future__ import annotations

import contextlib
import ftplib
import ssl
from typing import Any

from export_pipeline import interrupts
from export_pipeline.destinations.base import (
    CountingReader,
    DeliveryError,
    Destination,
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

BLOCK_SIZE = 256 * 1024


class _FtpTls(ftplib.FTP_TLS):
    """ftplib's FTPS with two interop fixes: data connections resume the control
    connection's TLS session (vsftpd's default ``require_ssl_reuse`` insists), and a server
    that closes the data connection without a TLS close_notify (pyftpdlib, others) is not an
    error: the server's ``226`` reply and the size check after it say whether the file
    arrived whole."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=self.sock.session
            )
        return conn, size

    def storbinary(self, cmd, fp, blocksize=8192, callback=None, rest=None):
        self.voidcmd("TYPE I")
        with self.transfercmd(cmd, rest) as conn:
            while buf := fp.read(blocksize):
                conn.sendall(buf)
                if callback:
                    callback(buf)
            if isinstance(conn, ssl.SSLSocket):
                with contextlib.suppress(ssl.SSLEOFError, ssl.SSLZeroReturnError):
                    conn.unwrap()
        return self.voidresp()


class FtpDestination(Destination):
    def __init__(
        self, *, server: str, port: int, username: str, password: str, folder: str | None,
        tls: bool, ca_file: str | None, host_policy: HostPolicy, timeout: float,
    ):
        self.server, self.port, self.username = server, port, username
        self.folder, self.tls = folder, tls
        self._password, self.ca_file = password, ca_file
        self.host_policy, self.timeout = host_policy, timeout

    def describe(self) -> dict[str, Any]:
        return {"type": "ftps" if self.tls else "ftp", "server": self.server,
                "port": self.port, "username": self.username}

    def _where(self) -> str:
        return f"{'ftps' if self.tls else 'ftp'}://{self.username}@{self.server}:{self.port}"

    def _connect(self) -> ftplib.FTP:
        if self.tls:
            ftp: ftplib.FTP = _FtpTls(
                context=ssl.create_default_context(cafile=self.ca_file), timeout=self.timeout
            )
        else:
            ftp = ftplib.FTP(timeout=self.timeout)
        # ftplib.FTP.connect would resolve the name again: connect to the vetted address and
        # keep the name as ``host`` for TLS certificate checks.
        ftp.host, ftp.port = self.server, self.port
        ftp.sock = self.host_policy.connect(self.server, self.port, self.timeout)
        ftp.af = ftp.sock.family
        ftp.file = ftp.sock.makefile("r", encoding=ftp.encoding)
        try:
            ftp.welcome = ftp.getresp()
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.auth()
            ftp.login(self.username, self._password)
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
        except BaseException as error:
            ftp.close()
            if isinstance(error, ftplib.error_perm) and str(error).startswith("530"):
                raise PermanentDeliveryError(
                    f"{self._where()}: login refused (wrong username or password)"
                ) from None
            if isinstance(error, ssl.SSLCertVerificationError):
                raise PermanentDeliveryError(
                    f"{self._where()}: the server's TLS certificate is not trusted: "
                    f"{error.verify_message}"
                ) from None
            raise _classify(error, self._where()) from None
        return ftp

    def deliver(self, upload: Upload) -> Receipt:
        final = server_path(self.folder, upload.file_name)
        temporary = temporary_sibling(final, upload.attempt_tag)
        ftp = self._connect()
        reader = CountingReader(upload.stream)
        try:
            ftp.storbinary(f"STOR {temporary}", reader, blocksize=BLOCK_SIZE)
            # checked before the rename: a short file never reaches the final path
            try:
                size = ftp.size(temporary)
            except ftplib.error_perm:  # SIZE is an extension (RFC 3659) some servers lack
                size = None
            if size is not None and size != reader.count:
                raise TransientDeliveryError(
                    f"{self._where()}: {final} had {size} bytes after the transfer, not "
                    f"{reader.count}; it was not put in place"
                )
            interrupts.checkpoint()  # the rename puts the file at its path: not after a Ctrl-C
            try:
                ftp.rename(temporary, final)
            except ftplib.error_perm:  # some servers refuse to rename over an existing file
                replace_through_aside(
                    ftp.rename, ftp.delete, final, upload.attempt_tag, ftplib.error_perm
                )
        except BaseException as error:
            self._remove_leftover(ftp, temporary)
            raise _classify(error, f"{self._where()}/{final.lstrip('/')}") from None
        finally:
            with contextlib.suppress(Exception):
                ftp.quit()
            ftp.close()
        return Receipt(self.describe(), final, reader.count, {"remoteSize": size})

    def _remove_leftover(self, ftp: ftplib.FTP, temporary: str) -> None:
        try:
            ftp.delete(temporary)
            return
        except (ftplib.Error, OSError, EOFError):
            pass
        with contextlib.suppress(DeliveryError, ftplib.Error, OSError, EOFError):
            again = self._connect()
            try:
                again.delete(temporary)
            finally:
                again.close()


def _classify(error: BaseException, where: str) -> BaseException:
    if isinstance(error, DeliveryError):
        return error
    if isinstance(error, ftplib.error_perm):
        return PermanentDeliveryError(f"{where}: the server refused: {error}")
    if isinstance(error, (ftplib.error_temp, ftplib.error_reply, ftplib.error_proto, OSError, EOFError)):
        return TransientDeliveryError(f"{where}: transfer failed: {str(error) or type(error).__name__}")
    return error
