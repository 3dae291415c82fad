"""The SSRF policy: names are checked on the addresses they resolve to."""

from __future__ import annotations

import re
import socket

import pytest

from export_pipeline.destinations.base import PermanentDeliveryError
from export_pipeline.destinations.host_policy import HostPolicy


@pytest.mark.parametrize("address,reason", [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.9", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "private"),  # shared address space (carrier-grade NAT)
    ("169.254.169.254", "link-local"),  # the cloud metadata endpoint
    ("fe80::1", "link-local"),
    ("fd00::1", "private"),
    ("203.0.113.7", "reserved"),  # documentation range
    ("0.0.0.0", "not a unicast"),
    ("224.0.0.1", "not a unicast"),
])
def test_non_public_addresses_are_refused_by_default(address, reason):
    with pytest.raises(PermanentDeliveryError, match=reason):
        HostPolicy().resolve(address, 22)


def test_names_are_checked_after_resolution():
    # "localhost" is a harmless-looking name; what it resolves to decides.
    with pytest.raises(PermanentDeliveryError, match="resolves to .* a loopback address"):
        HostPolicy().resolve("localhost", 22)


def test_public_addresses_pass():
    assert HostPolicy().resolve("8.8.8.8", 22) == ["8.8.8.8"]


def test_loopback_only_when_allowed_explicitly():
    assert HostPolicy(allow_loopback=True).resolve("127.0.0.1", 22) == ["127.0.0.1"]
    with pytest.raises(PermanentDeliveryError):
        HostPolicy(allow_private=True).resolve("127.0.0.1", 22)
    assert HostPolicy(allow_private=True).resolve("10.1.2.3", 22) == ["10.1.2.3"]
    with pytest.raises(PermanentDeliveryError):
        HostPolicy(allow_loopback=True).resolve("10.1.2.3", 22)


def test_allow_list():
    policy = HostPolicy(allowed_hosts=("sftp.partner.example", "*.acme.example", "8.8.4.4"))
    assert policy.host_allowed("SFTP.partner.example.")
    assert policy.host_allowed("files.acme.example")
    assert not policy.host_allowed("acme.example")
    assert not policy.host_allowed("evil.example")
    with pytest.raises(PermanentDeliveryError, match="not in the allowed destination hosts"):
        policy.resolve("8.8.8.8", 22)
    assert policy.resolve("8.8.4.4", 22) == ["8.8.4.4"]


def test_unknown_name_is_permanent():
    with pytest.raises(PermanentDeliveryError, match="cannot resolve"):
        HostPolicy().resolve("no-such-host.invalid", 22)


def test_connects_to_the_vetted_address():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with HostPolicy(allow_loopback=True).connect("localhost", port, timeout=5) as connection:
            assert connection.getpeername()[0] in ("127.0.0.1", "::1")
        with pytest.raises(PermanentDeliveryError):
            HostPolicy().connect("localhost", port, timeout=5)


@pytest.mark.parametrize("address,reason", [
    ("::127.0.0.1", "carrying 127.0.0.1, a loopback address"),  # IPv4-compatible
    ("::7f00:1", "carrying 127.0.0.1, a loopback address"),
    ("::a9fe:a9fe", "carrying 169.254.169.254, a link-local address"),
    ("64:ff9b::a9fe:a9fe", "carrying 169.254.169.254, a link-local address"),  # NAT64
    ("64:ff9b::a00:1", "carrying 10.0.0.1, a private or reserved address"),
    ("64:ff9b:1::a9fe:a9fe", "a private or reserved address"),  # local-use NAT64
    ("2002:a9fe:a9fe::1", "carrying 169.254.169.254, a link-local address"),  # 6to4
    ("2002:7f00:1::1", "carrying 127.0.0.1, a loopback address"),
    ("2002:c0a8:0101::1", "carrying 192.168.1.1, a private or reserved address"),
    # Teredo: server 65.54.227.120, client 127.0.0.1 (stored bit-inverted)
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "carrying 127.0.0.1, a loopback address"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a private or reserved address"),
    ("fec0::1", "a private or reserved address"),  # deprecated site-local
    ("::8.8.8.8", "a private or reserved address"),  # IPv4-compatible is deprecated
])
def test_ipv6_addresses_carrying_or_hiding_non_global_ones_are_refused(address, reason):
    with pytest.raises(PermanentDeliveryError, match=re.escape(reason)):
        HostPolicy().resolve(address, 22)


@pytest.mark.parametrize("address", [
    "2606:4700:4700::1111",  # plain global unicast
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 to a public IPv4 address
    "2002:808:808::1",  # 6to4 of a public IPv4 address
])
def test_global_unicast_ipv6_passes(address):
    assert HostPolicy().resolve(address, 22) == [address]


def test_every_refused_address_is_named():
    with pytest.raises(PermanentDeliveryError) as refused:
        HostPolicy().vet("multi.example", ["8.8.8.8", "127.0.0.1", "::a9fe:a9fe", "10.0.0.1"])
    message = str(refused.value)
    assert "127.0.0.1, a loopback address" in message
    assert "::a9fe:a9fe, an IPv6 address carrying 169.254.169.254, a link-local address" in message
    assert "10.0.0.1, a private or reserved address" in message
    assert "8.8.8.8" not in message
