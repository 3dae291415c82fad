"""The inbox's pure rules: run keys, request ids, result keys, result documents, and how an
unforeseen failure or an S3 error is told apart."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from export_pipeline.contract.problems import Problem
from export_pipeline.inbox import requests as inbox


def test_run_key_and_request_ids():
    item = inbox.InboxFile("requests/a.json", "abc", 0.0, 2)
    assert item.run_key == "requests/a.json@abc"
    assert inbox.request_id_for("requests/team/april.json", "requests/", {}) == "team.april"
    assert inbox.request_id_for("requests/x y!.yaml", "requests/", None) == "x-y"
    envelope = {"data": {"id": "req-1", "body": {}}}
    assert inbox.request_id_for("requests/whatever.json", "requests/", envelope) == "req-1"
    bad = {"data": {"id": "../../etc", "body": {}}}
    assert inbox.request_id_for("requests/w.json", "requests/", bad) == "w"


def test_result_documents():
    item = inbox.InboxFile("requests/a.json", "abc", 0.0, 2)
    failed = inbox.result_document(
        "a", "failed", source=item, bucket="b", errors=[Problem("csvFormat.sortBy[0]", "bad")]
    )
    assert failed["errors"] == [{"path": "csvFormat.sortBy[0]", "message": "bad"}]
    assert failed["request"] == {"bucket": "b", "key": "requests/a.json", "etag": "abc"}
    complete = inbox.result_document("a", "complete", run_id="r", response={
        "bucket": "b", "key": "k", "signedUrl": "u", "rows": 3, "bytes": 9, "requestId": "a"})
    assert complete["body"] == [{"bucket": "b", "key": "k", "signedUrl": "u"}]
    assert (complete["rows"], complete["bytes"], complete["errors"]) == (3, 9, None)


def test_each_request_file_has_its_own_result_key():
    keys = [
        "requests/team/april.json", "requests/team.april.json", "requests/team april.json",
        "requests/team-april.json", "requests/team/april.yaml", "requests/team/april.JSON",
        "requests/a/b.c.json", "requests/a.b/c.json",
    ]
    results = [inbox.result_key("results/", "requests/", k) for k in keys]
    assert results == [
        "results/team/april.json", "results/team.april.json", "results/team april.json",
        "results/team-april.json", "results/team/april.yaml", "results/team/april.JSON",
        "results/a/b.c.json", "results/a.b/c.json",
    ]
    # the ids these files read as collide; their results never do
    assert inbox.id_from_key(keys[0], "requests/") == inbox.id_from_key(keys[1], "requests/")
    assert inbox.result_key("out/", "", "x/y.json") == "out/x/y.json"


def test_a_result_key_longer_than_s3_stores_is_refused():
    name = "é" * 510  # 1,020 bytes of UTF-8
    assert inbox.result_key("r/", "requests/", f"requests/{name}.json") is None
    assert inbox.result_key("r/", "requests/", f"requests/{name[:-5]}.json") is not None


@pytest.mark.parametrize("error, reason", [
    (RecursionError("maximum recursion depth exceeded"), "it is nested too deeply"),
    (OverflowError("date value out of range"), "a number or date in it is out of range"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "it is not UTF-8 text"),
    (KeyError("/srv/secret/path"), "handling it failed unexpectedly (KeyError)"),
])
def test_an_unforeseen_failure_is_told_plainly(error, reason):
    assert inbox.unexpected_problem(error) == Problem("", f"the request file cannot be handled: {reason}")
    assert "secret" not in inbox.unexpected_problem(error).message


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


def test_only_an_unreachable_or_busy_store_is_retried():
    assert inbox.is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert inbox.is_transient(ReadTimeoutError(endpoint_url="http://127.0.0.1:1"))
    assert inbox.is_transient(client_error("InternalError", 500))
    assert inbox.is_transient(client_error("SlowDown", 503))
    assert inbox.is_transient(client_error("RequestTimeout", 400))
    for code, status in [("AccessDenied", 403), ("InvalidObjectState", 403), ("KeyTooLongError", 400)]:
        assert not inbox.is_transient(client_error(code, status))


def test_a_settled_result_is_left_alone():
    """The run and its status sensors all write a result, in any order: none steps back from
    this run's final status, and none writes over the result of a file changed since."""
    def result(status, run_id="r1", etag="e1"):
        return {"status": status, "runId": run_id, "request": {"etag": etag}}

    assert not inbox.result_is_settled(None, "e1", "r1")
    assert not inbox.result_is_settled(result("queued", run_id=None), "e1", "r1")
    assert not inbox.result_is_settled(result("running"), "e1", "r1")
    assert inbox.result_is_settled(result("complete"), "e1", "r1")
    assert inbox.result_is_settled(result("failed"), "e1", "r1")
    assert not inbox.result_is_settled(result("complete", run_id="r0"), "e1", "r1")  # an older run's
    assert inbox.result_is_settled(result("queued", etag="e2"), "e1", "r1")  # the file changed
    assert not inbox.result_is_settled({"status": "queued", "request": None}, "e1", "r1")
