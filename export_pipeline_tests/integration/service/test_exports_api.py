"""The export service over real HTTP: a real server process, a real Dagster instance whose
runs really execute, a real S3-compatible server. Every status code, fresh URLs, deletion,
tenants kept apart, quotas and rate limits."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import httpx
import pytest

from export_pipeline.service.tenants import key_hash
from export_pipeline_tests.integration.service.conftest import SEED_ENTITY
from export_pipeline_tests.support.helpers import all_objects
from export_pipeline_tests.support.requests import SEED_BODY, SEED_ENVELOPE, download, parse_csv
from export_pipeline_tests.support.service import wait_for_status


def _post(client: httpx.Client, body: dict) -> httpx.Response:
    return client.post("/v1/exports", json=body)


@pytest.fixture(scope="module")
def completed(service):
    """One export of the seed request by acme, run to completion."""
    with service.client("acme") as client:
        response = _post(client, {**SEED_BODY, "name": "April entries", "notes": "for the board",
                                  "tags": ["monthly", "board"]})
        assert response.status_code == 202, response.text
        created = response.json()
        done = wait_for_status(client, created["id"], {"complete", "failed"})
    return response, created, done


def test_post_answers_202_with_location_and_the_queued_resource(completed):
    response, created, _ = completed
    assert response.headers["Location"] == f"/v1/exports/{created['id']}"
    assert created["status"] == "queued"
    assert created["name"] == "April entries" and created["notes"] == "for the board"
    assert created["tags"] == ["monthly", "board"] and created["format"] == "csv"
    assert created["created_by"] == "acme-ci"
    assert created["url"] is None and created["number_of_rows"] is None and created["errors"] is None


def test_the_export_completes_with_counts_and_a_url_to_the_file(completed, service_s3, service_bucket):
    _, created, done = completed
    assert done["status"] == "complete", done
    rows = parse_csv(download(done["url"]))
    assert rows[0] == ["Date", "Entries"]
    assert done["number_of_rows"] == len(rows) - 1 == 30  # April has 30 days
    assert done["total_bytes"] == len(download(done["url"]))
    key = urlsplit(done["url"]).path.split(f"/{service_bucket}/", 1)[1]
    assert key == f"exports/tenants/acme/{created['id']}.csv"
    assert key in all_objects(service_s3, service_bucket)


def _signature(url: str) -> tuple[str, str, str]:
    query = parse_qs(urlsplit(url).query)
    return query["X-Amz-Signature"][0], query["X-Amz-Date"][0], query["X-Amz-Expires"][0]


def test_each_view_signs_a_fresh_url_valid_for_the_ttl_from_that_view(service, completed):
    _, created, done = completed
    with service.client("acme") as client:
        first = client.get(f"/v1/exports/{created['id']}").json()["url"]
        time.sleep(1.1)  # SigV4 dates have whole seconds: the next view is in a later second
        second = client.get(f"/v1/exports/{created['id']}").json()["url"]
    (sig1, date1, ttl1), (sig2, date2, ttl2) = _signature(first), _signature(second)
    assert sig1 != sig2 and date2 > date1
    assert ttl1 == ttl2 == "3600"
    assert parse_qs(urlsplit(first).query)["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert download(first) == download(second) == download(done["url"])


def test_answers_holding_urls_and_records_are_never_stored_by_a_cache(service, completed):
    _, created, _ = completed
    with service.client("acme") as client:
        answers = [client.get(f"/v1/exports/{created['id']}"), client.get("/v1/exports"),
                   client.get("/v1/exports/no-such-export"), _post(client, {"csvFormat": 1})]
    with httpx.Client(base_url=service.url) as anonymous:
        answers.append(anonymous.get("/v1/exports"))
    assert [a.status_code for a in answers] == [200, 200, 404, 422, 401]
    for answer in answers:
        assert answer.headers["Cache-Control"] == "no-store", answer.request.url
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert "Content-Security-Policy" not in answer.headers  # the page's policy, not the API's


def test_the_health_endpoint_answers_without_a_key_and_stays_out_of_the_document(service):
    """What the load balancer and the Kubernetes probes call: no key, no cache, not an API path."""
    with httpx.Client(base_url=service.url) as anonymous:
        health = anonymous.get("/healthz")
        document = anonymous.get("/openapi.json").json()
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert health.headers["X-Content-Type-Options"] == "nosniff"
    assert "/healthz" not in document["paths"]


def test_the_run_is_in_the_instance_tagged_with_tenant_and_export(completed, dagster_instance):
    _, created, _ = completed
    runs = dagster_instance.get_runs(filters=dg.RunsFilter(tags={
        "export_pipeline/tenant": "acme", "export_pipeline/export_id": created["id"]}))
    assert len(runs) == 1
    run = runs[0]
    assert run.job_name == "api_export_job" and run.status is dg.DagsterRunStatus.SUCCESS
    assert run.tags["export_pipeline/kind"] == "api"
    assert run.run_config["file_path"] == f"tenants/acme/{created['id']}"


def test_api_keys_never_reach_the_instance_or_the_services_log(service, completed, dagster_instance):
    _, created, _ = completed
    run = dagster_instance.get_runs(filters=dg.RunsFilter(tags={"export_pipeline/export_id": created["id"]}))[0]
    texts = [str(run.run_config), str(run.tags), *(str(e) for e in dagster_instance.all_logs(run.run_id))]
    texts += [p.read_text(errors="replace") for p in Path(service.env["DAGSTER_HOME"]).glob("service-*.log")]
    for key in service.keys.values():
        assert all(key not in text and key_hash(key) not in text for text in texts)
    assert all("exk_" not in text for text in texts)


def test_no_key_wrong_key_or_wrong_scheme_is_401(service):
    with service.client() as client:
        for headers in ({}, {"Authorization": "Bearer exk_wrong"},
                        {"Authorization": f"Basic {service.keys['acme']}"}):
            response = client.get("/v1/exports", headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["WWW-Authenticate"] == "Bearer"
        assert client.post("/v1/exports", json=SEED_BODY).status_code == 401


def test_an_inactive_tenant_gets_403_subscription_required(service):
    with service.client("dormant") as client:
        for response in (client.get("/v1/exports"), _post(client, SEED_BODY)):
            assert response.status_code == 403
            assert response.json()["reason"] == "subscription_required"


def _out_of_scope_errors(client, body) -> list[dict]:
    """The errors of a 403 ``out_of_scope`` answer to ``body``, which created no export."""
    before = client.get("/v1/exports").json()["exports"]
    response = _post(client, body)
    assert response.status_code == 403, response.text
    assert response.json()["reason"] == "out_of_scope"
    assert client.get("/v1/exports").json()["exports"] == before
    return response.json()["errors"]


def test_out_of_scope_entities_types_and_formats_are_403_naming_each_path(service):
    body = copy.deepcopy(SEED_BODY)
    body["metricRequests"][0]["entities"] = [SEED_ENTITY, "someone-else", "another"]
    body["metricRequests"][0].pop("entityType")
    body["format"] = "xlsx"
    with service.client("initech") as client:
        assert sorted(e["path"] for e in _out_of_scope_errors(client, body)) == [
            "format.extension",
            "metricRequests[0].entities[1]",
            "metricRequests[0].entities[2]",
            "metricRequests[0].entityType",
        ]
    envelope = copy.deepcopy(SEED_ENVELOPE)
    envelope["data"]["body"]["metricRequests"][0]["entityType"] = "zone"
    with service.client("acme") as client:
        response = _post(client, envelope)
    assert response.status_code == 403
    assert [e["path"] for e in response.json()["errors"]] == ["data.body.metricRequests[0].entityType"]


def test_the_deployments_saved_keys_buckets_saved_exports_chats_and_mail_are_403_unless_granted(
        service, dagster_instance, service_s3, service_bucket):
    body = {**SEED_BODY, "destinations": [
        {"type": "aws"},
        {"type": "sftp", "server": "sftp.partner.example", "username": "u", "savedKey": "acme-partner-key"},
        {"type": "gcs", "gcs_bucket": "acme-drop"},
    ], "notification": {"messages": [
        {"policy": "onSuccess", "medium": "email", "target": "ops@example.com", "title": "t", "text": "x"},
        {"policy": "onFailure", "medium": "slack", "title": "t", "text": "{{error}}"},
        {"policy": "onFailure", "medium": "telegram", "target": "-1001234567", "title": "t", "text": "x"},
    ]}}
    saved = {"savedExport": "daily-entries", "start": "2024-04-01T00:00:00+02:00",
             "end": "2024-04-03T00:00:00+02:00"}
    runs_before = len(dagster_instance.get_run_ids())
    with service.client("umbrella") as client:
        listed = client.get("/v1/exports").json()["exports"]
        assert [e["path"] for e in _out_of_scope_errors(client, body)] == [
            "destinations[1].savedKey", "destinations[2].gcs_bucket", "notification.messages[0].target",
            "notification.messages[1].medium", "notification.messages[2].medium",
        ]
        assert [e["path"] for e in _out_of_scope_errors(client, saved)] == ["savedExport"]
        assert listed == []
    assert len(dagster_instance.get_run_ids()) == runs_before
    assert not dagster_instance.get_runs(filters=dg.RunsFilter(tags={"export_pipeline/tenant": "umbrella"}))
    assert not [k for k in all_objects(service_s3, service_bucket) if "/tenants/umbrella/" in k]


def _email(target: str) -> dict:
    return {"policy": "onSuccess", "medium": "email", "target": target,
            "title": "{{name}} is ready", "text": "{{rows}} rows: {{signedUrl}}"}


def test_email_to_anyone_but_the_tenants_recipients_is_403_at_its_target_and_nothing_launched(
        service, dagster_instance):
    """mailer lists ops@acme.example and @Partner.Example: any other address, however close,
    is refused, so the operator's SMTP server is no relay for it. (One the mailer would read
    as another, 'x@=?utf-8?q?partner.example?=' or a trailing dot, is no address at all: 422.)"""
    refused = ["other@acme.example", "OPS@acme.example", "evil@sub.partner.example",
               "x@partner.example.evil", "x@partnеr.example",  # a Cyrillic е
               "x@ｐartner.example"]
    body = {**SEED_BODY, "notification": {"messages": [_email("ops@acme.example"), *map(_email, refused)]}}
    runs_before = len(dagster_instance.get_run_ids())
    with service.client("mailer") as client:
        assert _out_of_scope_errors(client, body) == [
            {"path": f"notification.messages[{i}].target", "message": f"{target!r} is outside this key's scope"}
            for i, target in enumerate(refused, 1)]
    assert len(dagster_instance.get_run_ids()) == runs_before


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_the_tenants_recipients_get_their_mail_through_the_operators_smtp_server(
        service, dagster_instance, monkeypatch):
    from export_pipeline.orchestration.definitions import build_definitions
    from export_pipeline_tests.support.notification_servers import SMTP_PASSWORD, SMTP_USER, SmtpServer

    targets = ["ops@acme.example", "Anyone@PARTNER.example"]  # the exact address; any at the domain
    with service.client("mailer") as client:
        response = _post(client, {**SEED_BODY, "name": "Mailed",
                                  "notification": {"messages": [_email(t) for t in targets]}})
        assert response.status_code == 202, response.text
        done = wait_for_status(client, response.json()["id"], {"complete", "failed"})
    assert done["status"] == "complete", done
    [run] = dagster_instance.get_runs(filters=dg.RunsFilter(tags={"export_pipeline/export_id": done["id"]}))
    [success] = dagster_instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    with SmtpServer() as smtp:
        for name in ("EXPORT_METRICS_PATH", "EXPORT_BUCKET"):
            monkeypatch.setenv(name, service.env[name])
        for name, value in {"HOST": "127.0.0.1", "PORT": str(smtp.port), "SECURITY": "none",
                            "USERNAME": SMTP_USER, "PASSWORD": SMTP_PASSWORD,
                            "FROM": "exports@operator.example"}.items():
            monkeypatch.setenv(f"EXPORT_SMTP_{name}", value)
        defs = build_definitions()  # the daemon's success sensor, on the service's run
        with dg.build_run_status_sensor_context(
            sensor_name="export_success_notifications", dagster_event=success.dagster_event,
            dagster_instance=dagster_instance, dagster_run=run,
            resources={k: defs.resources[k] for k in ("notifier", "export_storage")},
        ) as context:
            defs.resolve_sensor_def("export_success_notifications")(context)
    assert smtp.recipients == [[t] for t in targets]
    assert [(m["From"], m["To"], m["Subject"]) for m in smtp.messages] == [
        ("exports@operator.example", t, "Mailed is ready") for t in targets]
    text = smtp.messages[0].get_payload(decode=True).decode().strip()
    assert text.startswith("30 rows: ")
    assert parse_csv(download(text.split(": ", 1)[1]))[0] == ["Date", "Entries"]


def test_an_invalid_request_is_422_with_every_problem_and_nothing_launched(service, dagster_instance):
    body = copy.deepcopy(SEED_BODY)
    body["csvFormat"]["sortBy"] = [5]
    body["metricRequests"][0]["aggregationPeriod"] = "fortnight"
    body["name"] = "x" * 101
    body["tags"] = ["ok", "y" * 51]
    runs_before = len(dagster_instance.get_run_ids())
    with service.client("globex") as client:
        listed = client.get("/v1/exports").json()["exports"]
        response = _post(client, body)
        assert response.status_code == 422
        paths = {e["path"] for e in response.json()["errors"]}
        assert {"name", "tags[1]", "csvFormat.sortBy[0]",
                "metricRequests[0].aggregationPeriod"} <= paths
        for raw in (b"not json", b"[1, 2]"):
            bad = client.post("/v1/exports", content=raw, headers={"Content-Type": "application/json"})
            assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == ""
        assert client.get("/v1/exports").json()["exports"] == listed
        assert client.get("/v1/exports", params={"status": "done"}).status_code == 422
        assert client.get("/v1/exports", params={"cursor": "garbage"}).status_code == 422
    assert len(dagster_instance.get_run_ids()) == runs_before


def test_a_credential_sealed_elsewhere_is_refused_and_nothing_launched(service, dagster_instance):
    """A sealed value a tenant could have seen in another tenant's run config is never
    accepted from outside: the service seals what it is sent."""
    from export_pipeline.destinations.sealing import Sealer, binding, generate_key

    destination = {"type": "ftp", "server": "ftp.partner.example", "username": "u"}
    stolen = Sealer(generate_key()).seal("acme-password", binding(destination, "password"))
    body = {**SEED_BODY, "destinations": [{**destination, "password": stolen}]}
    runs_before = len(dagster_instance.get_run_ids())
    with service.client("globex") as client:
        listed = client.get("/v1/exports").json()["exports"]
        response = _post(client, body)
        assert response.status_code == 422, response.text
        assert [e["path"] for e in response.json()["errors"]] == ["destinations[0].password"]
        assert client.get("/v1/exports").json()["exports"] == listed
    assert len(dagster_instance.get_run_ids()) == runs_before


def test_a_body_over_the_limit_is_413_before_it_is_parsed(service):
    with service.client("globex") as client:
        response = client.post("/v1/exports", content=b"{" + b" " * 1_048_577 + b"}",
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["reason"] == "body_too_large"

        def chunks():  # no Content-Length: counted as it streams in
            for _ in range(20):
                yield b" " * 65_536

        response = client.post("/v1/exports", content=chunks(), headers={"Content-Type": "application/json"})
        assert response.status_code == 413


def test_the_monthly_quota_is_429_with_retry_after_until_next_month(service):
    from datetime import datetime, timezone

    from export_pipeline.service.limits import next_month_start

    with service.client("tiny") as client:
        assert _post(client, SEED_BODY).status_code == 202
        response = _post(client, SEED_BODY)
    assert response.status_code == 429 and response.json()["reason"] == "quota_exceeded"
    expected = (next_month_start(datetime.now(timezone.utc)) - datetime.now(timezone.utc)).total_seconds()
    assert abs(int(response.headers["Retry-After"]) - expected) < 120


def test_the_rate_limit_is_429_with_retry_after(service):
    with service.client("chatty") as client:
        answers = [client.get("/v1/exports") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json()["reason"] == "rate_limited"
    assert 1100 < int(answers[3].headers["Retry-After"]) <= 1200  # a token per 3600/3 s
    with service.client("globex") as client:  # another tenant's calls are its own
        assert client.get("/v1/exports").status_code == 200


def test_tenants_cannot_see_list_sign_or_delete_each_other(service, completed, service_s3, service_bucket):
    _, created, _ = completed
    with service.client("globex") as other:
        missing = other.get("/v1/exports/00000000-0000-0000-0000-000000000000")
        foreign = other.get(f"/v1/exports/{created['id']}")
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == missing.json()
        assert other.delete(f"/v1/exports/{created['id']}").status_code == 404
        assert created["id"] not in {e["id"] for e in other.get("/v1/exports").json()["exports"]}
    with service.client("acme") as owner:
        assert owner.get(f"/v1/exports/{created['id']}").json()["status"] == "complete"
    assert f"exports/tenants/acme/{created['id']}.csv" in all_objects(service_s3, service_bucket)


def test_list_filters_and_pages_newest_first(service):
    with service.client("hooli") as client:
        ids = []
        for tags, fmt in ((["a"], "csv"), (["b"], "csv"), (["a", "b"], "xlsx")):
            response = _post(client, {**SEED_BODY, "tags": tags, "format": fmt})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        for export_id in ids:
            assert wait_for_status(client, export_id, {"complete", "failed"})["status"] == "complete"
        newest_first = list(reversed(ids))

        def listed(**params) -> list[str]:
            return [e["id"] for e in client.get("/v1/exports", params=params).json()["exports"]]

        assert listed() == newest_first
        assert listed(tag="a") == [ids[2], ids[0]]
        assert listed(format="xlsx") == [ids[2]]
        assert listed(status="complete") == newest_first
        assert listed(status="failed") == listed(status="queued") == []
        first = client.get(f"/v1/exports/{ids[0]}").json()
        third = client.get(f"/v1/exports/{ids[2]}").json()
        assert listed(created_after=first["created"]) == [ids[2], ids[1]]
        assert listed(created_before=third["created"]) == [ids[1], ids[0]]
        page = client.get("/v1/exports", params={"limit": 2}).json()
        assert [e["id"] for e in page["exports"]] == newest_first[:2] and page["next_cursor"]
        rest = client.get("/v1/exports", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        assert [e["id"] for e in rest["exports"]] == newest_first[2:] and rest["next_cursor"] is None


def test_delete_removes_the_file_so_an_earlier_url_stops_working(service, service_s3, service_bucket):
    with service.client("globex") as client:
        created = _post(client, SEED_BODY).json()
        done = wait_for_status(client, created["id"], {"complete", "failed"})
        url = done["url"]
        assert download(url)
        response = client.delete(f"/v1/exports/{created['id']}")
        assert response.status_code == 204 and response.content == b""
        with pytest.raises(Exception) as refused:
            download(url)
        assert getattr(refused.value, "code", None) in (403, 404)
        assert client.get(f"/v1/exports/{created['id']}").status_code == 404
        assert client.delete(f"/v1/exports/{created['id']}").status_code == 404
        assert created["id"] not in {e["id"] for e in client.get("/v1/exports").json()["exports"]}
    assert f"exports/tenants/globex/{created['id']}.csv" not in all_objects(service_s3, service_bucket)


def test_delete_cancels_an_unfinished_export(service, dagster_instance, service_s3, service_bucket):
    with service.client("globex") as client:
        created = _post(client, SEED_BODY).json()
        assert client.delete(f"/v1/exports/{created['id']}").status_code == 204
        runs = dagster_instance.get_runs(filters=dg.RunsFilter(tags={"export_pipeline/export_id": created["id"]}))
        run_id = runs[0].run_id
        while not dagster_instance.get_run_by_id(run_id).is_finished:
            time.sleep(0.5)
        client.get("/v1/exports")  # settles deleted exports whose run has finished
    # cancelled while starting, a run ends FAILURE after its CANCELING event; later, CANCELED
    assert dagster_instance.get_run_by_id(run_id).status in (
        dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE)
    events = {e.dagster_event.event_type for e in dagster_instance.all_logs(run_id) if e.dagster_event}
    assert dg.DagsterEventType.RUN_CANCELING in events
    assert f"exports/tenants/globex/{created['id']}.csv" not in all_objects(service_s3, service_bucket)


def test_a_saved_export_and_a_window(service):
    with service.client("globex") as client:
        response = _post(client, {"savedExport": "daily-entries", "start": "2024-04-01T00:00:00+02:00",
                                  "end": "2024-04-03T00:00:00+02:00", "name": "two days"})
        assert response.status_code == 202, response.text
        done = wait_for_status(client, response.json()["id"], {"complete", "failed"})
        assert done["status"] == "complete", done
        rows = parse_csv(download(done["url"]))
        assert rows[0] == ["Date", "Entries"]
        days = {row[0][:10] for row in rows[1:]}  # hourly buckets of the window's two Berlin days
        assert days == {"2024-04-01", "2024-04-02"} and all(r[0].endswith("+02:00") for r in rows[1:])
        bad = _post(client, {"savedExport": "daily-entries", "start": "2024-04-01", "end": "x"})
        assert bad.status_code == 422
        assert {e["path"] for e in bad.json()["errors"]} == {"start", "end"}
        unknown = _post(client, {"savedExport": "nope", "start": "2024-04-01", "end": "x"})
        assert unknown.status_code == 403  # as a name it may not run: which names exist stays hidden
        assert [e["path"] for e in unknown.json()["errors"]] == ["savedExport"]


def test_inline_credentials_are_sealed_before_the_run_and_never_shown(service, dagster_instance):
    body = {**SEED_BODY, "destinations": [{
        "type": "sftp", "server": "127.0.0.1", "port": 2222, "username": "u",
        "password": "hunter2-secret", "path": "/in"}]}
    with service.client("globex") as client:
        response = _post(client, body)
        assert response.status_code == 202, response.text
        done = wait_for_status(client, response.json()["id"], {"complete", "failed"})
        assert "hunter2-secret" not in str(done) and "hunter2-secret" not in response.text
        # loopback destinations are refused by the host policy: the export fails, saying why
        assert done["status"] == "failed" and done["url"] is None
        assert [set(e) for e in done["errors"]] == [{"path", "message"}]
        assert "loopback address" in done["errors"][0]["message"]
    run = dagster_instance.get_runs(filters=dg.RunsFilter(tags={"export_pipeline/export_id": done["id"]}))[0]
    assert "hunter2-secret" not in str(run.run_config) + str(run.tags)
    logs = dagster_instance.all_logs(run.run_id)
    assert all("hunter2-secret" not in str(entry) for entry in logs)
