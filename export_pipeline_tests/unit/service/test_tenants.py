from __future__ import annotations

import hashlib

import pytest

from export_pipeline.contract.problems import InvalidRequest
from export_pipeline.service.tenants import KEY_PREFIX, key_entry, key_hash, load_document, new_key, parse_tenants


def _directory(**extra):
    key = new_key()
    document = {"tenants": [{"name": "acme", "keys": [{"name": "ci", "sha256": key_hash(key)}], **extra}]}
    return parse_tenants(document), key


def test_a_key_is_a_long_random_token_and_the_file_holds_its_sha256():
    a, b = new_key(), new_key()
    assert a != b and a.startswith(KEY_PREFIX) and len(a) >= 40
    assert key_hash(a) == hashlib.sha256(a.encode()).hexdigest()
    line = key_entry(a, 'say "hi"')
    assert a not in line
    assert load_document(line) == [{"name": 'say "hi"', "sha256": key_hash(a)}]


def test_authenticate_finds_the_tenant_and_key_name_and_nothing_else():
    directory, key = _directory()
    caller = directory.authenticate(key)
    assert caller.tenant.name == "acme" and caller.key_name == "ci"
    assert directory.authenticate(key + "x") is None
    assert directory.authenticate("") is None and directory.authenticate(None) is None
    assert directory.authenticate(key_hash(key)) is None  # the hash is not a key


def test_every_problem_of_a_tenants_file_has_its_path():
    with pytest.raises(InvalidRequest) as error:
        parse_tenants({"tenants": [
            {"name": "Bad Name", "keys": [{"name": "k", "sha256": "short"}], "colour": 1},
            {"name": "ok", "formats": ["docx"], "monthly_quota": -1,
             "rate_limit": {"requests": 0, "per_seconds": 1}},
        ]})
    paths = {p.path for p in error.value.problems}
    assert paths == {"tenants[0].name", "tenants[0].keys[0].sha256", "tenants[0].colour",
                     "tenants[1].formats[0]", "tenants[1].monthly_quota", "tenants[1].rate_limit.requests"}


def test_duplicate_tenants_and_keys_are_refused():
    digest = key_hash(new_key())
    with pytest.raises(InvalidRequest) as error:
        parse_tenants({"tenants": [
            {"name": "a", "keys": [{"name": "x", "sha256": digest}]},
            {"name": "a", "keys": [{"name": "y", "sha256": digest}]},
        ]})
    assert {p.path for p in error.value.problems} == {"tenants[1].name", "tenants[1].keys[0].sha256"}


def test_saved_keys_buckets_saved_exports_and_chat_media_are_denied_unless_listed():
    directory, _ = _directory()
    tenant = directory.tenants["acme"]
    assert tenant.saved_keys == [] and tenant.gcs_buckets == [] and tenant.saved_exports == []
    assert [m.value for m in tenant.notification_media] == ["email"]
    directory, _ = _directory(saved_keys=["acme-partner-key"], gcs_buckets=["acme-drop"],
                              saved_exports=["daily-entries"], notification_media=["email", "slack"])
    tenant = directory.tenants["acme"]
    assert (tenant.saved_keys, tenant.gcs_buckets, tenant.saved_exports) == (
        ["acme-partner-key"], ["acme-drop"], ["daily-entries"])
    assert [m.value for m in tenant.notification_media] == ["email", "slack"]
    with pytest.raises(InvalidRequest) as error:
        _directory(notification_media=["email", "sms"], saved_keys=[""], gcs_buckets="acme-drop")
    assert {p.path for p in error.value.problems} == {
        "tenants[0].notification_media[1]", "tenants[0].saved_keys[0]", "tenants[0].gcs_buckets"}


def test_a_branding_logo_that_is_not_a_file_is_refused_with_its_path(tmp_path):
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG")
    parse_tenants({"tenants": [{"name": "a", "branding": {"logo_path": str(logo)}}]})
    with pytest.raises(InvalidRequest) as refused:
        parse_tenants({"tenants": [{"name": "a", "branding": {"logo_path": str(tmp_path / "gone.png")}}]})
    assert [p.path for p in refused.value.problems] == ["tenants[0].branding.logo_path"]


def test_email_recipients_are_nobody_unless_listed_and_a_bad_entry_is_refused_with_its_path():
    directory, _ = _directory()
    assert directory.tenants["acme"].email_recipients == []
    directory, _ = _directory(email_recipients=["ops@ACME.example", "@Partner.Example"])
    assert directory.tenants["acme"].email_recipients == ["ops@acme.example", "@partner.example"]
    with pytest.raises(InvalidRequest) as error:
        _directory(email_recipients=["ops@acme.example", "acme.example", "*@acme.example",
                                     "ops@acme.example\r\nBcc: x@evil.example", "@acme.example.", 5])
    problems = error.value.problems
    assert [p.path for p in problems] == [f"tenants[0].email_recipients[{i}]" for i in range(1, 6)]
    assert "an email address (ops@acme.example) or @domain" in problems[0].message
    with pytest.raises(InvalidRequest) as error:
        _directory(email_recipients="@acme.example")
    assert [p.path for p in error.value.problems] == ["tenants[0].email_recipients"]
