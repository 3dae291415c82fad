"""The export service's decisions, on in-memory stand-ins for its two outside parts (the runs
and the bucket) and a real SQLite state file. The HTTP server, Dagster and S3 are exercised
by the integration tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from export_pipeline.saved_exports.definitions import load_saved_exports
from export_pipeline.service.api import ApiError, ExportService, FilesUnavailable, Launch
from export_pipeline.service.exports import RunObservation, Status
from export_pipeline.service.state import SqliteStateStore
from export_pipeline.service.tenants import key_hash, new_key, parse_tenants
from export_pipeline_tests.support.requests import REPO, SEED_BODY


class Runs:
    def __init__(self):
        self.launched: list[Launch] = []
        self.status: dict[str, RunObservation] = {}
        self.cancelled: list[str] = []

    def launch(self, launch: Launch) -> str:
        self.launched.append(launch)
        run_id = f"run-{len(self.launched)}"
        self.status[run_id] = RunObservation(Status.queued)
        return run_id

    def observe(self, run_ids):
        return {r: self.status[r] for r in run_ids if r in self.status}

    def cancel(self, run_id):
        self.cancelled.append(run_id)


class Files:
    def __init__(self):
        self.deleted: list[tuple[str, str]] = []
        self.signed = 0
        self.down = False

    def sign(self, bucket, key, expires_in):
        if self.down:
            raise FilesUnavailable("Unable to locate credentials")
        self.signed += 1
        return f"https://s3/{bucket}/{key}?ttl={expires_in}&n={self.signed}"

    def delete(self, bucket, key):
        if self.down:
            raise FilesUnavailable("Could not connect to the endpoint URL")
        self.deleted.append((bucket, key))


# what acme may use of the deployment's own; globex lists nothing (the email medium, nobody to mail)
ACME_ALLOWANCES = {"saved_keys": ["k"], "gcs_buckets": ["acme-drop"],
                   "saved_exports": ["daily-entries"], "notification_media": ["email", "slack"],
                   "email_recipients": ["ops@example.com"]}


@pytest.fixture
def setup(tmp_path):
    keys = {"acme": new_key(), "globex": new_key()}
    tenants = parse_tenants({"tenants": [
        {"name": n, "monthly_quota": 3, "branding": {"name": "Acme"} if n == "acme" else None,
         **(ACME_ALLOWANCES if n == "acme" else {}),
         "keys": [{"name": f"{n}-key", "sha256": key_hash(k)}]} for n, k in keys.items()]})
    clock = [datetime(2026, 5, 31, 23, 0, tzinfo=timezone.utc)]
    runs, files = Runs(), Files()
    service = ExportService(
        tenants=tenants, state=SqliteStateStore(tmp_path / "s.sqlite"), runs=runs, files=files,
        bucket="b", prefix="exports", url_ttl=900, schema=lambda: None, saved_exports=dict,
        clock=lambda: clock[0],
    )
    callers = {n: service.authenticate(f"Bearer {k}") for n, k in keys.items()}
    return service, runs, files, callers, clock


def _create(service, caller, body=None):
    return service.create(caller, json.dumps(body or SEED_BODY).encode())


def test_create_launches_one_run_under_the_tenants_prefix_with_its_tags_and_branding(setup):
    service, runs, _, callers, _ = setup
    created = _create(service, callers["acme"], {**SEED_BODY, "name": "n", "tags": ["a", "a", "b"]})
    assert created["status"] == "queued" and created["tags"] == ["a", "b"]
    (launch,) = runs.launched
    assert launch.file_path == f"tenants/acme/{created['id']}"
    assert launch.tags == {"export_pipeline/tenant": "acme", "export_pipeline/export_id": created["id"],
                           "export_pipeline/created_by": "acme-key"}
    assert launch.branding == {"name": "Acme"} and launch.name == "n"
    assert launch.document == SEED_BODY


def test_status_follows_the_run_and_each_view_signs_again(setup):
    service, runs, files, callers, clock = setup
    created = _create(service, callers["acme"])
    runs.status["run-1"] = RunObservation(Status.running, progress={"fetches_done": 0, "fetches_total": 1, "rows": None})
    assert service.view(callers["acme"], created["id"])["progress"]["fetches_total"] == 1
    runs.status["run-1"] = RunObservation(Status.complete, rows=30, bytes=506)
    clock[0] += timedelta(seconds=1)
    first = service.view(callers["acme"], created["id"])
    second = service.view(callers["acme"], created["id"])
    assert first["url"] != second["url"] and "ttl=900" in first["url"]
    assert (first["number_of_rows"], first["total_bytes"]) == (30, 506)
    del runs.status["run-1"]  # a finished export is answered from the record alone
    assert service.view(callers["acme"], created["id"])["status"] == "complete"


def test_another_tenants_export_is_not_found_and_untouched(setup):
    service, runs, files, callers, _ = setup
    created = _create(service, callers["acme"])
    for call in (service.view, service.delete):
        with pytest.raises(ApiError) as error:
            call(callers["globex"], created["id"])
        assert error.value.status == 404
    assert service.list(callers["globex"], {})["exports"] == []
    assert files.deleted == [] and runs.cancelled == []


def test_deleting_an_unfinished_export_cancels_it_and_deletes_a_file_written_as_it_stopped(setup):
    service, runs, files, callers, _ = setup
    created = _create(service, callers["acme"])
    key = ("b", f"exports/tenants/acme/{created['id']}.csv")
    service.delete(callers["acme"], created["id"])
    assert runs.cancelled == ["run-1"] and files.deleted == [key]
    runs.status["run-1"] = RunObservation(Status.complete, rows=1, bytes=1)  # it wrote anyway
    service.list(callers["acme"], {})
    assert files.deleted == [key, key]
    service.list(callers["acme"], {})
    assert files.deleted == [key, key]  # settled once


def test_a_bucket_out_of_reach_is_a_503_to_retry_and_the_export_stays_as_it_was(setup):
    service, runs, files, callers, _ = setup
    created = _create(service, callers["acme"])
    runs.status["run-1"] = RunObservation(Status.complete, rows=30, bytes=506)
    files.down = True
    for call in (service.delete, service.view):
        with pytest.raises(ApiError) as error:
            call(callers["acme"], created["id"])
        assert error.value.status == 503 and error.value.headers == {"Retry-After": "30"}
        assert error.value.body["reason"] == "unavailable"
    files.down = False
    assert service.view(callers["acme"], created["id"])["status"] == "complete"
    service.delete(callers["acme"], created["id"])
    assert files.deleted == [("b", f"exports/tenants/acme/{created['id']}.csv")]


def test_a_file_written_as_its_run_stopped_is_deleted_once_the_bucket_is_back(setup):
    service, runs, files, callers, _ = setup
    created = _create(service, callers["acme"])
    service.delete(callers["acme"], created["id"])
    runs.status["run-1"] = RunObservation(Status.complete, rows=1, bytes=1)
    files.down = True
    assert service.list(callers["acme"], {})["exports"] == []  # the list still answers
    files.down = False
    service.list(callers["acme"], {})
    key = ("b", f"exports/tenants/acme/{created['id']}.csv")
    assert files.deleted == [key, key]


def test_the_quota_counts_this_months_exports_deleted_ones_too(setup):
    service, _, _, callers, clock = setup
    for _ in range(3):
        created = _create(service, callers["acme"])
    service.delete(callers["acme"], created["id"])
    with pytest.raises(ApiError) as error:
        _create(service, callers["acme"])
    assert error.value.status == 429 and error.value.headers["Retry-After"] == "3600"
    assert _create(service, callers["globex"])["status"] == "queued"
    clock[0] += timedelta(hours=1)  # June
    assert _create(service, callers["acme"])["status"] == "queued"


def test_resource_fields_and_list_parameters_are_checked_with_paths(setup):
    service, runs, _, callers, _ = setup
    with pytest.raises(ApiError) as error:
        _create(service, callers["acme"], {**SEED_BODY, "name": "", "notes": 5, "tags": "x"})
    assert {e["path"] for e in error.value.body["errors"]} == {"name", "notes", "tags"}
    assert runs.launched == []
    with pytest.raises(ApiError) as error:
        service.list(callers["acme"], {"limit": "0", "status": "x", "format": "doc",
                                       "created_after": "yesterday", "page": "2"})
    assert {e["path"] for e in error.value.body["errors"]} == {
        "limit", "status", "format", "created_after", "page"}


@pytest.mark.parametrize("raw, path", [
    (json.dumps({**SEED_BODY, "tags": ["\ud800"]}).encode(), "tags[0]"),
    (json.dumps({**SEED_BODY, "name": "a\ud800"}).encode(), "name"),
    (json.dumps({**SEED_BODY, "notes": "\udfff"}).encode(), "notes"),
    (json.dumps(SEED_BODY)[:-1].encode() + b', "name": "a", "name": "b"}', "name"),
    (json.dumps(SEED_BODY).encode("utf-16"), ""),
    (b"[" * 5000 + b"]" * 5000, ""),
    (b"name: yaml", ""),
    (json.dumps({**SEED_BODY, "name": "a\u0000\r\nb"}).encode(), "name"),
    (json.dumps({**SEED_BODY, "tags": ["ok", "x\ny"]}).encode(), "tags[1]"),
    (json.dumps({**SEED_BODY, "notes": "bell\u0007"}).encode(), "notes"),
    (json.dumps({**SEED_BODY, "notification": {"messages": [{
        "policy": "onSuccess", "medium": "email", "target": "a@b.example\r\nBcc: x@evil.example",
        "title": "t", "text": "x"}]}}).encode(), "notification.messages[0].target"),
    (json.dumps({**SEED_BODY, "notification": {"messages": [{
        "policy": "onSuccess", "medium": "email", "target": "a@b.example",
        "title": "t\r\nBcc: x@evil.example", "text": "x"}]}}).encode(), "notification.messages[0].title"),
    (json.dumps({"savedExport": "daily-entries", "start": "0001-01-01T00:00:00+14:00",
                 "end": "0001-01-02T00:00:00+14:00"}).encode(), "start"),
])
def test_a_body_no_rule_foresaw_is_422_at_its_path_and_nothing_is_written(setup, raw, path):
    service, runs, _, callers, _ = setup
    with pytest.raises(ApiError) as error:
        service.create(callers["acme"], raw)
    assert error.value.status == 422
    assert path in {e["path"] for e in error.value.body["errors"]}
    assert runs.launched == [] and service.list(callers["acme"], {})["exports"] == []


def test_notes_keep_their_line_breaks(setup):
    service, runs, _, callers, _ = setup
    created = _create(service, callers["acme"], {**SEED_BODY, "notes": "line one\r\n\tline two"})
    assert created["notes"] == "line one\r\n\tline two"


@pytest.mark.parametrize("params, path", [
    ({"limit": "+3"}, "limit"), ({"limit": "1_0"}, "limit"), ({"limit": "\u0665"}, "limit"),
    ({"limit": " 7 "}, "limit"),
    ({"created_after": "0001-01-01T00:00:00+14:00"}, "created_after"),
    ({"created_before": "9999-12-31T23:59:59-14:00"}, "created_before"),
    ({"cursor": __import__("base64").urlsafe_b64encode(b"[" * 3000).decode()}, "cursor"),
    ({"cursor": __import__("base64").urlsafe_b64encode(
        b'{"2024-01-01T00:00:00": 1, "x": 2}').decode()}, "cursor"),
])
def test_list_parameters_are_read_strictly(setup, params, path):
    service, _, _, callers, _ = setup
    with pytest.raises(ApiError) as error:
        service.list(callers["acme"], params)
    assert error.value.status == 422 and [e["path"] for e in error.value.body["errors"]] == [path]


def test_a_run_that_cannot_be_launched_is_503_and_leaves_no_export(setup):
    service, runs, _, callers, _ = setup

    def refuse(launch):
        raise ConnectionError("code server down")

    runs.launch = refuse
    with pytest.raises(ApiError) as error:
        _create(service, callers["acme"])
    assert error.value.status == 503
    assert service.list(callers["acme"], {})["exports"] == []


def test_a_run_with_deliveries_is_tagged_with_their_hosts_for_the_queues_per_host_limit(setup):
    service, runs, _, callers, _ = setup
    destinations = [
        {"type": "SFTP", "server": "SFTP.Partner.example", "port": "22", "username": "u", "savedKey": "k"},
        {"type": "aws"},
    ]
    _create(service, callers["acme"], {**SEED_BODY, "destinations": destinations})
    _create(service, callers["acme"])
    with_delivery, without = runs.launched
    assert with_delivery.tags["export_pipeline/destination_host"] == "sftp.partner.example"
    assert "export_pipeline/destination_host" not in without.tags


def test_a_complete_export_past_its_retention_is_expired_with_no_url(setup):
    service, runs, files, callers, clock = setup
    service.retention = timedelta(days=30)
    created = _create(service, callers["acme"])
    runs.status["run-1"] = RunObservation(Status.complete, rows=30, bytes=506)
    fresh = service.view(callers["acme"], created["id"])
    assert fresh["url"] and fresh["expired"] is False
    assert fresh["expires_at"] == "2026-06-30T23:00:00.000000Z"  # created 2026-05-31T23:00Z + 30 days
    clock[0] = datetime(2026, 6, 30, 22, 55, 30, tzinfo=timezone.utc)
    assert "ttl=270&" in service.view(callers["acme"], created["id"])["url"]  # not past the file
    signed = files.signed

    clock[0] = datetime(2026, 6, 30, 23, 0, tzinfo=timezone.utc)
    expired = service.view(callers["acme"], created["id"])
    assert expired["status"] == "complete" and expired["expired"] is True and expired["url"] is None
    assert expired["number_of_rows"] == 30 and files.signed == signed  # nothing signed for a gone file
    (listed,) = service.list(callers["acme"], {})["exports"]
    assert listed["expired"] is True and listed["url"] is None


def test_without_retention_or_before_completion_nothing_says_expired(setup):
    service, runs, _, callers, _ = setup
    created = _create(service, callers["acme"])
    assert "expired" not in created and "expires_at" not in created
    runs.status["run-1"] = RunObservation(Status.complete, rows=1, bytes=1)
    viewed = service.view(callers["acme"], created["id"])
    assert viewed["url"] and "expired" not in viewed


SAVED_KEY = {"type": "sftp", "server": "sftp.partner.example", "username": "u", "savedKey": "k"}
GCS = {"type": "gcs", "gcs_bucket": "acme-drop"}
NOTIFICATION = {"messages": [
    {"policy": "onSuccess", "medium": "email", "target": "ops@example.com", "title": "t", "text": "x"},
    {"policy": "onFailure", "medium": "slack", "title": "t", "text": "{{error}}"},
]}


def _refused(service, caller, body):
    with pytest.raises(ApiError) as error:
        _create(service, caller, body)
    assert error.value.status == 403 and error.value.body["reason"] == "out_of_scope"
    return [e["path"] for e in error.value.body["errors"]]


def test_another_tenants_saved_key_bucket_chat_media_and_recipients_are_403_and_nothing_is_created(setup):
    service, runs, _, callers, _ = setup
    body = {**SEED_BODY, "destinations": [{"type": "aws"}, SAVED_KEY, GCS], "notification": NOTIFICATION}
    assert _refused(service, callers["globex"], body) == [
        "destinations[1].savedKey", "destinations[2].gcs_bucket",
        "notification.messages[0].target", "notification.messages[1].medium"]
    assert _refused(service, callers["globex"], {**SEED_BODY, "destination": SAVED_KEY}) == [
        "destination.savedKey"]
    assert runs.launched == [] and service.list(callers["globex"], {})["exports"] == []
    assert service.state.created_since("globex", datetime(2000, 1, 1, tzinfo=timezone.utc)) == 0

    created = _create(service, callers["acme"], body)  # acme's own key, bucket and Slack
    (launch,) = runs.launched
    assert created["status"] == "queued"
    assert [m.medium.value for m in launch.notification.messages] == ["email", "slack"]


def test_email_to_a_recipient_not_listed_is_403_at_its_target_and_nothing_is_created(setup):
    """The operator's SMTP server is no relay: the email medium alone lets a tenant mail nobody."""
    service, runs, _, callers, _ = setup
    to_ops = {**SEED_BODY, "notification": {"messages": NOTIFICATION["messages"][:1]}}
    assert _refused(service, callers["globex"], to_ops) == ["notification.messages[0].target"]
    elsewhere = {"messages": [{**NOTIFICATION["messages"][0], "target": t}
                              for t in ("ops@example.com", "ops@example.com.evil", "OPS@example.com")]}
    assert _refused(service, callers["acme"], {**SEED_BODY, "notification": elsewhere}) == [
        "notification.messages[1].target", "notification.messages[2].target"]
    assert runs.launched == []
    for caller in callers.values():
        assert service.list(caller, {})["exports"] == []
        assert service.state.created_since(caller.tenant.name, datetime(2000, 1, 1, tzinfo=timezone.utc)) == 0

    _create(service, callers["acme"], to_ops)
    (launch,) = runs.launched
    assert [m.target for m in launch.notification.messages] == ["ops@example.com"]


def test_a_saved_export_runs_only_for_a_tenant_that_lists_it(setup):
    service, runs, _, callers, _ = setup
    saved = {s.name: s for s in load_saved_exports(REPO / "export_pipeline" / "examples" / "definitions")}
    service.saved_exports = lambda: saved
    window = {"start": "2024-04-01T00:00:00+02:00", "end": "2024-04-03T00:00:00+02:00"}
    assert _refused(service, callers["globex"], {"savedExport": "daily-entries", **window}) == ["savedExport"]
    assert runs.launched == [] and service.list(callers["globex"], {})["exports"] == []

    _create(service, callers["acme"], {"savedExport": "daily-entries", **window})
    (launch,) = runs.launched  # with the definition's own notification (Slack included)
    assert launch.notification == saved["daily-entries"].notification


def test_a_saved_export_mails_whom_the_operator_wrote_and_takes_no_notification_from_the_tenant(setup):
    """The definition's recipients are the operator's, needing no grant; a tenant cannot add
    its own messages to a saved export's run."""
    service, runs, _, callers, _ = setup
    saved = {s.name: s for s in load_saved_exports(REPO / "export_pipeline" / "examples" / "definitions")}
    service.saved_exports = lambda: saved
    key = new_key()
    service.tenants = parse_tenants({"tenants": [{"name": "initech", "saved_exports": ["daily-entries"],
                                                  "keys": [{"name": "k", "sha256": key_hash(key)}]}]})
    caller = service.authenticate(f"Bearer {key}")
    run = {"savedExport": "daily-entries", "start": "2024-04-01T00:00:00+02:00", "end": "2024-04-03T00:00:00+02:00"}
    with pytest.raises(ApiError) as error:
        _create(service, caller, {**run, "notification": NOTIFICATION})
    assert error.value.status == 422
    assert [e["path"] for e in error.value.body["errors"]] == ["notification"]
    assert runs.launched == []

    _create(service, caller, run)  # initech lists no email recipient
    (launch,) = runs.launched
    assert "ops@example.com" in [m.target for m in launch.notification.messages]


def test_a_saved_exports_own_problems_are_named_in_its_definition(setup, tmp_path):
    """The tenant asked for a window; the operator wrote the request. A measure the store
    lacks is reported at ``savedExport``, naming the definition's path, not the envelope
    the service wraps the request in."""
    from export_pipeline.store.source import StoreSchema

    service, runs, _, callers, _ = setup
    saved = {s.name: s for s in load_saved_exports(REPO / "export_pipeline" / "examples" / "definitions")}
    service.saved_exports = lambda: saved
    service.schema = lambda: StoreSchema(dimensions=("segments",), measures=("visits",))
    window = {"start": "2024-04-01T00:00:00+02:00", "end": "2024-04-03T00:00:00+02:00"}
    with pytest.raises(ApiError) as error:
        _create(service, callers["acme"], {"savedExport": "daily-entries", **window})
    assert error.value.status == 422
    [problem] = error.value.body["errors"]
    assert problem["path"] == "savedExport"
    assert problem["message"].startswith(
        "'daily-entries' over this window: request.csvFormat.columns[1].fetchValue: ")
    assert "data.body" not in problem["message"]
    assert runs.launched == []
