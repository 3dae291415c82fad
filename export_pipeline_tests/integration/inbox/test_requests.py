"""The inbox's listing in passes against a real S3 server: bounded work per tick, every new or
changed file found once, wherever its key sorts."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from export_pipeline.inbox import requests as inbox
from export_pipeline.inbox.requests import InboxCursor, scan
from export_pipeline.contract.problems import Problem


def put(s3_client, bucket, key, body=b"{}"):
    s3_client.put_object(Bucket=bucket, Key=key, Body=body)


def full_pass(s3_client, bucket, cursor, **limits):
    """Scan tick after tick until a pass completes; every candidate is marked handled."""
    found, ticks = [], 0
    while True:
        result = scan(s3_client, bucket, "requests/", cursor, time.time(), **limits)
        ticks += 1
        found += result.candidates
        cursor = result.cursor
        for item in result.candidates:
            cursor = cursor.mark(item)
        if result.pass_completed:
            return found, cursor, ticks


def test_a_pass_in_bounded_ticks_finds_each_request_file_once(s3_client, bucket):
    for name in ("b.json", "a.yaml", "c.yml", "d.JSON", "notes.txt", "sub/e.json"):
        put(s3_client, bucket, f"requests/{name}")
    put(s3_client, bucket, "elsewhere/x.json")
    found, cursor, ticks = full_pass(s3_client, bucket, InboxCursor(), max_listed=2)
    assert [f.key for f in found] == [
        "requests/a.yaml", "requests/b.json", "requests/c.yml", "requests/d.JSON", "requests/sub/e.json"
    ]
    assert ticks == 3 and cursor.after == ""
    # the next pass: nothing new, nothing changed
    again, cursor, _ = full_pass(s3_client, bucket, cursor, max_listed=2)
    assert again == []
    # a changed file and a new file whose key sorts before everything already seen
    put(s3_client, bucket, "requests/c.yml", b"{'changed': 1}")
    put(s3_client, bucket, "requests/0-first.json")
    again, cursor, _ = full_pass(s3_client, bucket, cursor, max_listed=2)
    assert [f.key for f in again] == ["requests/0-first.json", "requests/c.yml"]


def test_candidate_limit_resumes_where_it_stopped(s3_client, bucket):
    for i in range(7):
        put(s3_client, bucket, f"requests/{i}.json")
    result = scan(s3_client, bucket, "requests/", InboxCursor(), time.time(), max_candidates=3)
    assert [f.key for f in result.candidates] == [f"requests/{i}.json" for i in range(3)]
    assert result.listed == 3 and not result.pass_completed
    result = scan(s3_client, bucket, "requests/", result.cursor, time.time(), max_candidates=4)
    assert [f.key for f in result.candidates] == [f"requests/{i}.json" for i in range(3, 7)]
    assert result.pass_completed


def test_thousands_of_old_files_cost_only_their_listing(s3_client, bucket):
    keys = [f"requests/{i:05d}.json" for i in range(2500)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: put(s3_client, bucket, k), keys))
    before = time.time()
    time.sleep(2.1)  # S3 timestamps have one-second resolution
    put(s3_client, bucket, "requests/00000-new.json")
    put(s3_client, bucket, keys[-1], b'{"changed": true}')
    # the previous pass started after the old files were written
    cursor = InboxCursor(since=before + 0.5, pass_started=time.time())
    found, cursor, ticks = full_pass(s3_client, bucket, cursor, max_listed=1000)
    assert [f.key for f in found] == ["requests/00000-new.json", keys[-1]]
    assert ticks == 3  # 2502 keys, at most 1000 listed per tick


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


def test_results_inside_the_inbox_are_not_requests(s3_client, bucket):
    put(s3_client, bucket, "requests/a.json")
    put(s3_client, bucket, "requests/results/a.json")
    result = scan(s3_client, bucket, "requests/", InboxCursor(), time.time(),
                  exclude_prefix="requests/results/")
    assert [f.key for f in result.candidates] == ["requests/a.json"]
