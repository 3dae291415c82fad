"""Where outbound connections may go (SSRF): checked on the addresses a name resolves to.

A request names the server it wants a file sent to, so without a policy it could make this
service connect to the cloud metadata endpoint or a database on the private network. The
host must match the operator's allow-list (when one is set), and every address it resolves
to must be a public one: private, link-local, shared, reserved and multicast ranges are
refused unless the operator allows private networks, loopback unless loopback is allowed
explicitly (tests, local use). The connection then goes to a vetted address, never to a
second resolution of the name, so a DNS answer cannot change between check and use.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from dataclasses import dataclass

from export_pipeline.destinations.base import PermanentDeliveryError, TransientDeliveryError


@dataclass(frozen=True)
class HostPolicy:
    allowed_hosts: tuple[str, ...] = ()
    """Host names or patterns (``sftp.example.com``, ``*.example.com``, ``203.0.113.7``);
    empty means any host whose addresses are all public."""
    allow_private: bool = False
    allow_loopback: bool = False

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return not self.allowed_hosts or any(
            fnmatch.fnmatchcase(host, pattern.lower().rstrip(".")) for pattern in self.allowed_hosts
        )

    def address_refusal(self, address: str) -> str | None:
        """Why a connection to ``address`` is refused, or None when it is allowed."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_loopback:
            return None if self.allow_loopback else "a loopback address"
        if ip.is_multicast or ip.is_unspecified:
            return "not a unicast address"
        if not ip.is_global:
            if self.allow_private:
                return None
            return "a link-local address" if ip.is_link_local else "a private or reserved address"
        return None

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` a connection may use; raises when the host is refused."""
        if not self.host_allowed(host):
            raise PermanentDeliveryError(
                f"destination host {host!r} is not in the allowed destination hosts"
            )
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            kind = TransientDeliveryError if error.errno == socket.EAI_AGAIN else PermanentDeliveryError
            raise kind(f"cannot resolve destination host {host!r}: {error.strerror}") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for address in addresses:
            refusal = self.address_refusal(address)
            if refusal:
                raise PermanentDeliveryError(
                    f"destination host {host!r} resolves to {address}, {refusal}; "
                    "connections there are not allowed"
                )
        return addresses

    def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """A TCP connection to a vetted address of ``host``."""
        last_error: OSError | None = None
        for address in self.resolve(host, port):
            try:
                return socket.create_connection((address, port), timeout=timeout)
            except OSError as error:
                last_error = error
        raise TransientDeliveryError(
            f"cannot connect to {host}:{port}: {getattr(last_error, 'strerror', None) or last_error}"
        )
