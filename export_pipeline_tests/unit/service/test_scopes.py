from __future__ import annotations

import pytest

import copy

from export_pipeline.contract.validation import validate_document
from export_pipeline.notifications.messages import parse_notification
from export_pipeline.service.scopes import saved_export_problems, scope_problems
from export_pipeline.service.tenants import Tenant
from export_pipeline_tests.support.requests import SEED_BODY

ENTITY = SEED_BODY["metricRequests"][0]["entities"][0]


def _request(**changes):
    body = copy.deepcopy(SEED_BODY)
    body["metricRequests"][0].update(changes)
    for key, value in list(body["metricRequests"][0].items()):
        if value is None:
            del body["metricRequests"][0][key]
    return validate_document(body).request


def test_an_unscoped_tenant_may_export_anything():
    assert scope_problems(_request(entities=None, entityType=None), Tenant(name="a")) == []


def test_each_entity_outside_the_scope_is_named_and_all_entities_is_outside_it():
    tenant = Tenant(name="a", customer_scopes={"entities": [ENTITY]})
    assert scope_problems(_request(), tenant) == []
    problems = scope_problems(_request(entities=[ENTITY, "x", "y"]), tenant)
    assert [p.path for p in problems] == ["metricRequests[0].entities[1]", "metricRequests[0].entities[2]"]
    assert [p.path for p in scope_problems(_request(entities=None), tenant)] == ["metricRequests[0].entities"]


def test_entity_types_and_formats_and_the_envelope_prefix():
    tenant = Tenant(name="a", customer_scopes={"entity_types": ["zone"]}, formats=["pdf"])
    problems = scope_problems(_request(), tenant, "data.body.")
    assert [p.path for p in problems] == ["data.body.metricRequests[0].entityType", "data.body.format.extension"]
    assert [p.path for p in scope_problems(_request(entityType=None), tenant)][0] == "metricRequests[0].entityType"


# -- the deployment's own named credentials and definitions ------------------------------

SFTP_SAVED_KEY = {"type": "sftp", "server": "sftp.partner.example", "username": "u", "savedKey": "acme-partner-key"}
GCS = {"type": "gcs", "gcs_bucket": "acme-drop"}
MESSAGES = [
    {"policy": "onSuccess", "medium": "email", "target": "ops@example.com", "title": "t", "text": "x"},
    {"policy": "onFailure", "medium": "slack", "title": "t", "text": "x"},
    {"policy": "onFailure", "medium": "discord", "title": "t", "text": "x"},
    {"policy": "onFailure", "medium": "telegram", "target": "-1001234567", "title": "t", "text": "x"},
]


def _with(**fields):
    return validate_document({**copy.deepcopy(SEED_BODY), **fields}).request


def _notification(*media):
    notification, problems = parse_notification({"messages": [m for m in MESSAGES if m["medium"] in media]})
    assert problems == []
    return notification


def _paths(problems):
    return [p.path for p in problems]


def test_a_tenant_that_lists_nothing_may_use_no_saved_key_bucket_chat_medium_or_email_recipient():
    request = _with(destinations=[{"type": "aws"}, SFTP_SAVED_KEY, GCS])
    notification = _notification("email", "slack", "discord", "telegram")
    problems = scope_problems(request, Tenant(name="a"), notification=notification)
    assert _paths(problems) == [
        "destinations[1].savedKey", "destinations[2].gcs_bucket",
        "notification.messages[0].target", "notification.messages[1].medium",
        "notification.messages[2].medium", "notification.messages[3].medium",
    ]
    assert "'acme-partner-key' is outside" in problems[0].message
    assert problems[2].message == "'ops@example.com' is outside this key's scope"
    mails = Tenant(name="a", email_recipients=["ops@example.com"])  # email is a medium by default
    assert scope_problems(_with(), mails, notification=_notification("email")) == []


def test_a_saved_key_or_bucket_must_be_the_tenants_own_and_a_single_destination_has_its_path():
    tenant = Tenant(name="a", saved_keys=["acme-partner-key"], gcs_buckets=["acme-drop"])
    assert scope_problems(_with(destinations=[SFTP_SAVED_KEY, GCS]), tenant) == []
    others = Tenant(name="b", saved_keys=["globex-key"], gcs_buckets=["globex-drop"])
    assert _paths(scope_problems(_with(destination=SFTP_SAVED_KEY), others)) == ["destination.savedKey"]
    assert _paths(scope_problems(_with(destination=GCS), others, "data.body.")) == ["data.body.destination.gcs_bucket"]
    password = {"type": "sftp", "server": "sftp.partner.example", "username": "u", "password": "p"}
    assert scope_problems(_with(destination=password), others) == []  # the customer's own credentials


def test_listed_media_are_allowed_and_an_empty_list_refuses_email_too():
    chatty = Tenant(name="a", notification_media=["email", "slack", "discord", "telegram"],
                    email_recipients=["@example.com"], telegram_chats=["-1001234567"])
    assert scope_problems(_with(), chatty, notification=_notification("email", "slack", "discord", "telegram")) == []
    # email needs the medium as well as the recipient; a medium not granted is named alone
    slack_only = Tenant(name="a", notification_media=["slack"], email_recipients=["ops@example.com"])
    problems = scope_problems(_with(), slack_only, notification=_notification("email", "slack", "telegram"))
    assert _paths(problems) == ["notification.messages[0].medium", "notification.messages[2].medium"]
    assert _paths(scope_problems(_with(), Tenant(name="a", notification_media=[]),
                                 notification=_notification("email"))) == ["notification.messages[0].medium"]


def test_telegram_goes_only_to_a_listed_chat():
    """The deployment's bot may sit in other tenants' chats: only the listed ones are the
    tenant's. An @channel is matched without case, as Telegram reads it."""
    tenant = Tenant(name="a", notification_media=["telegram"],
                    telegram_chats=["-1001234567", "@Acme_Reports"])
    granted = _chats("-1001234567", "@acme_reports", "@ACME_REPORTS")
    assert scope_problems(_with(), tenant, notification=granted) == []
    refused = _chats("-1001234567", "-100123456", "1001234567", "@acme_reports2", "@other")
    assert _paths(scope_problems(_with(), tenant, notification=refused)) == [
        f"notification.messages[{i}].target" for i in range(1, 5)]
    nobody = Tenant(name="a", notification_media=["telegram"])
    assert _paths(scope_problems(_with(), nobody, notification=_chats("-1001234567"))) == [
        "notification.messages[0].target"]


def test_a_tenants_telegram_chats_must_be_chat_ids():
    for bad in ("", "12 34", "-1001234567\n", "@", "@a-b", "#general", "https://t.me/x", 5):
        with pytest.raises(ValueError, match="telegram_chats"):
            Tenant(name="a", telegram_chats=[bad])


def _chats(*targets):
    notification, problems = parse_notification({"messages": [
        {"policy": "onSuccess", "medium": "telegram", "target": t, "title": "t", "text": "x"} for t in targets]})
    assert problems == []
    return notification


def _emails(*targets):
    notification, problems = parse_notification({"messages": [
        {"policy": "onSuccess", "medium": "email", "target": t, "title": "t", "text": "x"} for t in targets]})
    assert problems == []
    return notification


def test_email_goes_only_to_a_listed_address_or_an_address_at_a_listed_domain():
    tenant = Tenant(name="a", email_recipients=["ops@acme.example", "@partner.example"])
    granted = _emails("ops@acme.example", "ops@ACME.example", "anyone@partner.example", "x@Partner.Example")
    assert scope_problems(_with(), tenant, notification=granted) == []
    refused = _emails("ops@acme.example", "other@acme.example", "OPS@acme.example",
                      "evil@sub.partner.example", "x@partner.example.evil", "x@partnеr.example")
    assert _paths(scope_problems(_with(), tenant, notification=refused)) == [
        f"notification.messages[{i}].target" for i in range(1, 6)]


def test_a_saved_exports_own_email_recipients_need_no_grant():
    """The operator wrote them; only the saved export's name is the tenant's to be granted."""
    granted = Tenant(name="a", saved_exports=["daily-entries"])
    assert scope_problems(_with(), granted, "", "daily-entries", _emails("ops@example.com")) == []


def test_a_saved_export_must_be_listed_and_brings_its_own_deliveries_and_notification():
    # the saved export's request may name the operator's key, bucket and chats: granted with it
    request = _with(destinations=[SFTP_SAVED_KEY, GCS])
    notification = _notification("slack")
    granted = Tenant(name="a", saved_exports=["daily-entries"])
    assert saved_export_problems("daily-entries", granted) == []
    assert scope_problems(request, granted, "data.body.", "daily-entries", notification) == []
    # not granted, whether it exists or not, and whatever the name's type: one answer
    for name in ("weekly-all", "no-such-export", 5, None):
        assert _paths(saved_export_problems(name, granted)) == ["savedExport"]
    assert _paths(saved_export_problems("daily-entries", Tenant(name="a"))) == ["savedExport"]
    scoped = Tenant(name="a", formats=["pdf"])  # the customer scopes still hold for its request
    assert _paths(scope_problems(request, scoped, "data.body.", "daily-entries")) == [
        "data.body.format.extension"]
