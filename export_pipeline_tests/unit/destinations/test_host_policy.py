"""The SSRF policy: names are checked on the addresses they resolve to."""

from __future__ import annotations

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
