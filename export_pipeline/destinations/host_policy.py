"""Where outbound connections may go (SSRF): checked on the addresses a name resolves to.

A request names the server it wants a file sent to, so without a policy it could make this
service connect to the cloud metadata endpoint or a database on the private network. The
host must match the operator's allow-list (when one is set), and every address it resolves
to must be plainly global unicast: private, link-local, shared, site-local, reserved and
multicast ranges are refused unless the operator allows private networks, loopback unless
loopback is allowed explicitly (tests, local use). An IPv6 address that carries an IPv4
address (IPv4-mapped and -compatible, NAT64, 6to4, Teredo) is judged by that IPv4 address
too, since a gateway or the kernel may deliver it there: ``64:ff9b::a9fe:a9fe`` is the
metadata endpoint, whatever its IPv6 range says. The connection then goes to a vetted address, never to a
second resolution of the name, so a DNS answer cannot change between check and use.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from export_pipeline.destinations.base import PermanentDeliveryError, TransientDeliveryError


_IPV4_COMPATIBLE = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")  # its IPv4 may sit at several offsets
_SIX_TO_FOUR = IPv6Network("2002::/16")
_SITE_LOCAL = IPv6Network("fec0::/10")  # deprecated, still routed privately


def _embedded_ipv4(ip: IPv6Address) -> list[IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (none for plain IPv6)."""
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are not IPv4-compatible
        return [IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in _NAT64:
        return [IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return []


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
        if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_loopback:
            return None if self.allow_loopback else "a loopback address"
        if ip.is_multicast or ip.is_unspecified:
            return "not a unicast address"
        if isinstance(ip, IPv6Address):
            for inner in _embedded_ipv4(ip):
                refusal = self.address_refusal(str(inner))
                if refusal:
                    return f"an IPv6 address carrying {inner}, {refusal}"
            if ip in _NAT64 or ip in _SIX_TO_FOUR:
                return None  # a gateway to the (public) IPv4 address it carries
            plainly_global = not (ip.is_reserved or ip.is_site_local or ip in _NAT64_LOCAL)
        else:
            plainly_global = not ip.is_reserved
        if not (ip.is_global and plainly_global):
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
        self.vet(host, addresses)
        return addresses

    def vet(self, host: str, addresses: list[str]) -> None:
        """Raise naming every address of ``host`` that is refused, not only the first."""
        refused = [
            f"{address}, {refusal}" for address in addresses
            if (refusal := self.address_refusal(address))
        ]
        if refused:
            raise PermanentDeliveryError(
                f"destination host {host!r} resolves to {'; and to '.join(refused)}; "
                "connections there are not allowed"
            )

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
