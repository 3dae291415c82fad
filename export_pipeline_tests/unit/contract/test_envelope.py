"""The request envelope, read in one place: its action, route, id and body."""

from __future__ import annotations

import copy

import pytest

from export_pipeline.contract.envelope import moved_path, moved_problems, unwrap, wrap
from export_pipeline.contract.problems import InvalidRequest, Problem
from export_pipeline.contract.validation import validate_document
from export_pipeline.destinations.sealing import plaintext_secret_paths
from export_pipeline.inbox.requests import request_id_for
from export_pipeline_tests.support.requests import SEED_BODY, SEED_ENVELOPE


def envelope(**changes) -> dict:
    document = copy.deepcopy(SEED_ENVELOPE)
    document.update(changes)
    return document


@pytest.mark.parametrize("action", ["external-services", "csv-generator", "", None, 1])
def test_an_action_other_than_the_documented_one_is_a_problem_at_action(action):
    with pytest.raises(InvalidRequest) as raised:
        validate_document(envelope(action=action))
    assert [p.path for p in raised.value.problems] == ["action"]
    assert "'external-service'" in raised.value.problems[0].message


def test_the_documented_action_and_an_envelope_without_one_are_accepted():
    assert validate_document(envelope()).request_id == "req-csv-001"
    without = envelope()
    del without["action"]
    assert validate_document(without).request_id == "req-csv-001"


def test_a_body_is_its_own_request_and_has_no_id():
    found = unwrap(SEED_BODY)
    assert found.body is SEED_BODY and found.prefix == "" and found.request_id is None
    assert found.problems == []


def test_the_envelope_parts_each_have_their_path():
    document = {"action": "nope", "extra": 1,
                "data": {"id": "../x", "route": "elsewhere", "body": [], "more": 2}}
    found = unwrap(document)
    assert found.body is None and found.request_id is None
    assert {p.path for p in found.problems} == {
        "action", "extra", "data.id", "data.route", "data.body", "data.more"
    }


def test_not_an_object():
    assert unwrap([1]).problems == [Problem("", "a request is a JSON object, not an array")]
    assert unwrap({"data": "x"}).problems == [Problem("data", "must be an object, not a string")]


def test_wrap_makes_an_envelope_the_parser_reads_back_without_problems():
    found = unwrap(wrap(copy.deepcopy(SEED_BODY), "daily-report"))
    assert found.body == SEED_BODY and found.request_id == "daily-report"
    assert found.prefix == "data.body." and found.problems == []


def test_sealing_and_the_inbox_read_the_envelope_the_same_way():
    document = envelope()
    document["data"]["body"]["destination"] = {
        "type": "ftp", "server": "ftp.example.com", "username": "u", "password": "p"
    }
    assert plaintext_secret_paths(document) == ["data.body.destination.password"]
    assert request_id_for("requests/a/b.json", "requests/", document) == "req-csv-001"
    document["data"]["id"] = "../../etc"
    assert request_id_for("requests/a/b.json", "requests/", document) == "a.b"


def test_a_wrapped_bodys_problems_move_to_where_the_user_wrote_the_body():
    problems = [Problem("data.body.csvFormat.columns[2].fetchValue", "m"), Problem("data.body", "b"),
                Problem("data.id", "i"), Problem("", "whole")]
    assert [p.path for p in moved_problems(problems, "request.")] == [
        "request.csvFormat.columns[2].fetchValue", "request", "data.id", "",
    ]
    assert moved_path("data.body.destinations[0]", "request.data.body.") == "request.data.body.destinations[0]"
    assert moved_path("data.body.", "request.") == "request."  # a prefix moves the same way
    assert moved_path("data.body.x", "") == "x"
    assert moved_path("data.bodyguard", "request.") == "data.bodyguard"
