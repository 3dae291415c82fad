"""Whom a tenant's email messages may reach: the entries of ``email_recipients`` and how a
target is matched against them."""

from __future__ import annotations

import pytest

from export_pipeline.notifications.messages import email_recipient
from export_pipeline.notifications.recipients import recipient_grant, recipient_granted

GRANTS = [recipient_grant("ops@acme.example"), recipient_grant("@Partner.Example")]


def test_an_entry_is_an_address_or_at_domain_with_its_domain_in_lower_case():
    assert GRANTS == ["ops@acme.example", "@partner.example"]
    assert recipient_grant("Ops@ACME.example") == "Ops@acme.example"  # the local part as written
    assert recipient_grant("@xn--bcher-kva.example") == "@xn--bcher-kva.example"


@pytest.mark.parametrize("entry", [
    "", "@", "acme.example", "ops", "ops@", "a@b@acme.example", "@*.acme.example", "*@acme.example",
    "@acme.example.", "@.acme.example", "@acme..example", "@-acme.example", "@acme-.example",
    "@" + "a" * 64 + ".example", "@bücher.example", "ops@acme.example.", "o ps@acme.example",
    "<ops@acme.example>", "ops@acme.example, x@evil.example", "@acme.example\n", "ops\r@acme.example",
    "ops\x85@acme.example", "ops\x9b@acme.example", "=?utf-8?q?ops?=@acme.example",
])
def test_anything_else_is_refused(entry):
    with pytest.raises(ValueError, match="an email address"):
        recipient_grant(entry)


@pytest.mark.parametrize("target", [
    "ops@acme.example", "ops@ACME.Example", "anyone@partner.example", "x.y+z@PARTNER.example",
])
def test_an_exact_address_or_any_address_at_the_domain_is_granted(target):
    assert recipient_granted(target, GRANTS)


@pytest.mark.parametrize("target", [
    "other@acme.example",                # an exact grant is not its domain
    "OPS@acme.example",                  # nor the local part in another case
    "evil@sub.partner.example",          # nor a subdomain
    "x@partner.example.evil",            # nor a domain that starts like it
    "x@evilpartner.example",
    "x@partner.example.",                # a trailing dot
    "x@partnеr.example",                 # a Cyrillic е
    "x@ｐartner.example",                 # a fullwidth p (NFKC would make it ASCII)
    "x@\u212aacme.example",              # the Kelvin sign, which lower() makes a k
    "x@partner.example\u200b",
    "x@=?utf-8?q?partner.example?=",     # an encoded word the header parser decodes
    "=?utf-8?q?x=40evil.example?=@partner.example",
    "@partner.example", "partner.example", "", "a@b@partner.example", "x@partner.example\n",
])
def test_anything_else_is_not(target):
    assert not recipient_granted(target, GRANTS)


def test_nothing_is_granted_without_entries():
    assert not recipient_granted("ops@acme.example", [])


def test_the_recipient_is_the_address_the_mail_goes_to():
    assert email_recipient("ops@acme.example") == "ops@acme.example"
    assert email_recipient("a@=?utf-8?q?evil.example?=") == "a@evil.example"
    assert email_recipient("a@acme.example.") is None
    assert email_recipient("a@b.example, c@d.example") is None
