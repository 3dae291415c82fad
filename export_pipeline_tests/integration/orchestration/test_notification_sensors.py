"""Notifications end to end on a real Dagster instance: a saved export's partition run, then the
run-status sensors deliver its messages to a real SMTP server and a real HTTP server standing
in for Slack, Discord and Telegram. Secrets come from the environment."""

from __future__ import annotations

import copy
import json
import time
import urllib.request
from datetime import datetime, timezone
from urllib.parse import urlsplit

import dagster as dg
import pytest
import yaml

from export_pipeline.orchestration.definitions import build_definitions
from export_pipeline.orchestration.inbox_sensors import RUN_KEY_TAG
from export_pipeline.orchestration.run_outcomes import export_response
from export_pipeline_tests.support.helpers import signature, signed_at
from export_pipeline_tests.support.notification_servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    SmtpServer,
    WebhookServer,
    free_port,
)
from export_pipeline_tests.support.requests import SEED_BODY, SEED_ENVELOPE

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

MESSAGES = [
    {"policy": "onSuccess", "medium": "email", "target": "ops@example.com",
     "title": "Export {{name}} ready", "text": "{{rows}} rows ({{bytes}} bytes) for {{window}}: {{signedUrl}}"},
    {"policy": "onSuccess", "medium": "slack", "title": "{{name}} ready", "text": "<{{signedUrl}}|download>"},
    {"policy": "onSuccess", "medium": "discord", "title": "{{name}} {{partition}}", "text": "{{signedUrl}}"},
    {"policy": "onSuccess", "medium": "telegram", "target": "-1001234",
     "title": "{{name}}", "text": "{{rows}} rows: {{signedUrl}}"},
    {"policy": "onFailure", "medium": "email", "target": "ops@example.com",
     "title": "Export {{name}} FAILED", "text": "{{window}}: {{error}}"},
    {"policy": "onFailure", "medium": "slack", "title": "{{name}} failed", "text": "{{status}}: {{error}}"},
    {"policy": "onFailure", "medium": "discord", "title": "{{name}} failed", "text": "{{error}}"},
    {"policy": "onFailure", "medium": "telegram", "target": "-1001234", "title": "{{name}} failed",
     "text": "{{error}}"},
]


@pytest.fixture
def servers(monkeypatch, bucket, demo_store_path, tmp_path):
    with SmtpServer() as smtp, WebhookServer() as hooks:
        monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
        monkeypatch.setenv("EXPORT_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("EXPORT_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("EXPORT_SMTP_SECURITY", "none")
        monkeypatch.setenv("EXPORT_SMTP_USERNAME", SMTP_USER)
        monkeypatch.setenv("EXPORT_SMTP_PASSWORD", SMTP_PASSWORD)
        monkeypatch.setenv("EXPORT_SMTP_FROM", "exports@example.com")
        monkeypatch.setenv("EXPORT_SLACK_WEBHOOK_URL", hooks.url("/slack/T0/B0/secret"))
        monkeypatch.setenv("EXPORT_DISCORD_WEBHOOK_URL", hooks.url("/discord/api/webhooks/1/tok"))
        monkeypatch.setenv("EXPORT_TELEGRAM_BOT_TOKEN", "4242:SECRET")
        monkeypatch.setenv("EXPORT_TELEGRAM_API_URL", hooks.url("/telegram"))
        monkeypatch.setenv("EXPORT_NOTIFY_BACKOFF_SECONDS", "0.05")
        body = copy.deepcopy(SEED_BODY)
        for metric_request in body["metricRequests"]:
            del metric_request["start"], metric_request["end"]
        folder = tmp_path / "definitions"
        folder.mkdir()
        (folder / "daily.yaml").write_text(yaml.safe_dump({
            "name": "daily-entries", "cadence": "daily", "start": "2024-04-01",
            "timezone": "Europe/Berlin", "request": body, "notification": {"messages": MESSAGES},
        }))
        monkeypatch.setenv("EXPORT_DEFINITIONS_PATH", str(folder))
        yield smtp, hooks


SENSOR_FOR = {
    dg.DagsterRunStatus.SUCCESS: ("export_success_notifications", dg.DagsterEventType.RUN_SUCCESS),
    dg.DagsterRunStatus.FAILURE: ("export_failure_notifications", dg.DagsterEventType.RUN_FAILURE),
    dg.DagsterRunStatus.CANCELED: ("export_canceled_notifications", dg.DagsterEventType.RUN_CANCELED),
}


def run_sensor(defs, instance, result, log_handler=None):
    """Evaluate the notification sensor of the finished run's outcome (``result``: the run or
    its in-process result)."""
    run = instance.get_run_by_id(result.run_id)
    name, event_type = SENSOR_FOR[run.status]
    [record] = instance.all_logs(run.run_id, of_type=event_type)
    resources = {
        k: defs.resources[k] for k in ("notifier", "export_storage", "request_inbox", "metric_source")
    }
    with dg.build_run_status_sensor_context(
        sensor_name=name, dagster_event=record.dagster_event, dagster_instance=instance,
        dagster_run=run, resources=resources,
    ) as context:
        if log_handler is not None:
            context.log.addHandler(log_handler)
        sensor = defs.resolve_sensor_def(name)
        sensor(context.for_run_failure() if run.status is dg.DagsterRunStatus.FAILURE else context)


WINDOW = "2024-04-02T00:00:00+02:00/2024-04-03T00:00:00+02:00"


def cancel(defs, instance, partition_key: str, tags: dict | None = None) -> dg.DagsterRun:
    """A saved export's partition run, canceled (as the UI or the API's delete of an unfinished
    export cancel one)."""
    job = defs.resolve_job_def("saved_export_daily_entries")
    run = instance.create_run_for_job(
        job_def=job, tags={**job.run_tags, "dagster/partition": partition_key, **(tags or {})}
    )
    instance.report_run_canceled(run)
    run = instance.get_run_by_id(run.run_id)
    assert run.status is dg.DagsterRunStatus.CANCELED
    return run


def test_success_messages_carry_a_link_signed_as_they_are_sent(servers, instance, monkeypatch, bucket):
    """The daemon may send the messages long after the file was written (it was down, say): the
    link is signed as they go out, with SigV4, for the configured lifetime, so it is still
    valid when it arrives."""
    smtp, hooks = servers
    monkeypatch.setenv("EXPORT_URL_TTL", "900")
    defs = build_definitions()
    result = defs.resolve_job_def("saved_export_daily_entries").execute_in_process(
        partition_key="2024-04-02", instance=instance
    )
    assert result.success
    # the saved export's steps are its asset's graph
    export = result.output_for_node("saved_export_daily_entries_steps.materialize_export")
    written = export_response(instance, result.run_id)["signedUrl"]  # the materialization's
    time.sleep(1.1)  # a signature's date counts whole seconds
    sending = datetime.now(timezone.utc).replace(microsecond=0)
    # the link is signed for the file's bucket, and the sensor's tick does not check the
    # configured one (a run's start does): this one does not exist
    monkeypatch.setenv("EXPORT_BUCKET", "moved-elsewhere")
    run_sensor(build_definitions(), instance, result)

    [mail] = smtp.messages
    text = mail.get_payload(decode=True).decode()
    url = text.rsplit(": ", 1)[1].strip()
    assert mail["Subject"] == "Export daily-entries ready"
    assert mail["From"] == "exports@example.com" and mail["To"] == "ops@example.com"
    assert text.strip() == f"1 rows ({export.bytes} bytes) for {WINDOW}: {url}"
    assert urlsplit(url).path == urlsplit(written).path == f"/{bucket}/{export.key}"
    assert signature(url)["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert signature(url)["X-Amz-Expires"] == "900"
    assert signed_at(url) >= sending > signed_at(written)
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read().startswith(b"Date,Entries\r\n2024-04-02,")
    assert hooks.to("/slack/T0/B0/secret")[0].body == {"text": f"*daily-entries ready*\n<{url}|download>"}
    assert hooks.to("/discord")[0].body == {"content": f"**daily-entries 2024-04-02**\n{url}"}
    [telegram] = hooks.to("/telegram")
    assert telegram.path == "/telegram/bot4242:SECRET/sendMessage"
    assert telegram.body == {"chat_id": "-1001234", "text": f"daily-entries\n\n1 rows: {url}"}
    assert len(hooks.requests) == 3  # no onFailure message went out
    # the secrets stayed out of the run's config and tags
    run = instance.get_run_by_id(result.run_id)
    assert "SECRET" not in json.dumps(run.run_config) + json.dumps(run.tags)
    assert SMTP_PASSWORD not in json.dumps(run.run_config) + json.dumps(run.tags)


def fail_and_notify(instance, monkeypatch, store) -> None:
    """A saved export's run that fails as its store ``store`` is missing, and the sensor's tick."""
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(store))
    defs = build_definitions()
    result = defs.resolve_job_def("saved_export_daily_entries").execute_in_process(
        partition_key="2024-04-02", instance=instance, raise_on_error=False
    )
    assert not result.success
    run_sensor(defs, instance, result)


def test_failure_messages_carry_the_error(servers, instance, tmp_path, monkeypatch):
    smtp, hooks = servers
    fail_and_notify(instance, monkeypatch, tmp_path / "missing-store")
    [mail] = smtp.messages
    assert mail["Subject"] == "Export daily-entries FAILED"
    assert "missing-store" in mail.get_payload(decode=True).decode()
    for prefix in ("/slack", "/discord", "/telegram"):
        [received] = hooks.to(prefix)
        assert "missing-store" in json.dumps(received.body)
    assert hooks.to("/slack")[0].body["text"].startswith("*daily-entries failed*\nfailed: ")


def test_a_canceled_run_sends_its_onfailure_messages_saying_so(servers, instance):
    smtp, hooks = servers
    defs = build_definitions()
    # canceled while queued: no plan step tagged its window; its partition tells it
    run = cancel(defs, instance, "2024-04-02")
    assert "export_pipeline/window" not in run.tags
    run_sensor(defs, instance, run)
    [mail] = smtp.messages
    assert mail["Subject"] == "Export daily-entries FAILED"
    assert mail.get_payload(decode=True).decode().strip() == f"{WINDOW}: the run was canceled"
    assert [r.path.split("/")[1] for r in hooks.requests] == ["slack", "discord", "telegram"]
    assert hooks.to("/slack")[0].body == {"text": "*daily-entries failed*\ncanceled: the run was canceled"}
    assert hooks.to("/discord")[0].body == {"content": "**daily-entries failed**\nthe run was canceled"}
    assert hooks.to("/telegram")[0].body == {
        "chat_id": "-1001234", "text": "daily-entries failed\n\nthe run was canceled"
    }


def test_each_finished_run_is_notified_once_by_the_sensor_of_its_outcome(
    servers, instance, tmp_path, monkeypatch
):
    """The three sensors tick over the same runs: a success, a failure and a cancellation each
    send their policy's messages once, ``{{status}}`` saying which."""
    smtp, hooks = servers
    definition = yaml.safe_load((tmp_path / "definitions" / "daily.yaml").read_text())
    definition["notification"] = {"messages": [
        {"policy": policy, "medium": "email", "target": "ops@example.com",
         "title": "{{name}} {{partition}} {{status}}", "text": text}
        for policy, text in (("onSuccess", "{{rows}} rows"), ("onFailure", "{{error}}"))
    ] + [{"policy": "onFailure", "medium": "slack", "title": "{{partition}}", "text": "{{status}}"}]}
    (tmp_path / "definitions" / "daily.yaml").write_text(yaml.safe_dump(definition))
    defs = build_definitions()
    resources = {k: defs.resources[k] for k in ("notifier", "export_storage")}

    def tick(name, cursor):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
            return defs.resolve_sensor_def(name).evaluate_tick(context).cursor

    names = [name for name, _ in SENSOR_FOR.values()]
    cursors = [tick(name, None) for name in names]  # a first tick only starts the cursor
    job = defs.resolve_job_def("saved_export_daily_entries")
    assert job.execute_in_process(partition_key="2024-04-02", instance=instance).success
    cancel(defs, instance, "2024-04-03")
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(tmp_path / "missing-store"))
    failing = build_definitions().resolve_job_def("saved_export_daily_entries")
    assert not failing.execute_in_process(
        partition_key="2024-04-04", instance=instance, raise_on_error=False
    ).success
    cursors = [tick(name, cursor) for name, cursor in zip(names, cursors)]
    for name, cursor in zip(names, cursors):
        tick(name, cursor)  # nothing new: nothing sent

    mails = sorted((m["Subject"], m.get_payload(decode=True).decode().strip()) for m in smtp.messages)
    assert [subject for subject, _ in mails] == [
        "daily-entries 2024-04-02 complete", "daily-entries 2024-04-03 canceled",
        "daily-entries 2024-04-04 failed",
    ]
    assert mails[0][1] == "1 rows"
    assert mails[1][1] == "the run was canceled"
    assert "missing-store" in mails[2][1]
    assert sorted(r.body["text"] for r in hooks.to("/slack")) == [
        "*2024-04-03*\ncanceled", "*2024-04-04*\nfailed",
    ]


def test_a_value_that_looks_like_markup_cannot_ping_a_channel(servers, instance, tmp_path, monkeypatch):
    """The error quotes what it failed on; in Slack '<!channel>' and in Discord '@everyone'
    would notify everyone. Values arrive as text; the template's own markup stays."""
    smtp, hooks = servers
    fail_and_notify(instance, monkeypatch, tmp_path / "<!channel> @everyone <@42>")
    [slack] = hooks.to("/slack")
    assert "&lt;!channel&gt; @everyone &lt;@42&gt;" in slack.body["text"]
    assert "<!channel>" not in slack.body["text"] and slack.body["text"].startswith("*")
    [discord] = hooks.to("/discord")
    assert "<!channel> @\u200beveryone <@\u200b42>" in discord.body["content"]
    assert "@everyone" not in discord.body["content"]
    [mail] = smtp.messages
    assert "<!channel> @everyone <@42>" in mail.get_payload(decode=True).decode()


def test_a_failing_medium_is_retried_and_never_stops_the_others(servers, instance, monkeypatch, caplog):
    smtp, hooks = servers
    hooks.fail_next = 1  # the first webhook call (Slack) gets a 500, then succeeds on retry
    monkeypatch.setenv("EXPORT_TELEGRAM_API_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    defs = build_definitions()
    result = defs.resolve_job_def("saved_export_daily_entries").execute_in_process(
        partition_key="2024-04-02", instance=instance
    )
    run_sensor(defs, instance, result, caplog.handler)  # does not raise
    assert len(smtp.messages) == 1
    assert [r.path.split("/")[1] for r in hooks.requests] == ["slack", "discord"]
    logged = caplog.text
    assert "slack delivery attempt 1 failed: HTTP 500" in logged
    assert "onSuccess notification to telegram -1001234 not delivered" in logged
    assert "4242:SECRET" not in logged


def test_inbox_requests_can_ask_for_notifications(servers, instance, s3_client, bucket):
    smtp, hooks = servers
    defs = build_definitions()
    document = {**SEED_ENVELOPE, "notification": {"messages": [MESSAGES[1]]}}
    s3_client.put_object(Bucket=bucket, Key="requests/n.json", Body=json.dumps(document).encode())
    resources = {k: defs.resources[k] for k in ("request_inbox", "metric_source")}
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        [request] = defs.resolve_sensor_def("request_inbox_sensor").evaluate_tick(context).run_requests
    assert "notification" not in request.run_config
    result = defs.resolve_job_def("export_job").execute_in_process(
        run_config=request.run_config, instance=instance,
        tags={**request.tags, RUN_KEY_TAG: request.run_key},
    )
    run_sensor(defs, instance, result)
    export = result.output_for_node("materialize_export")
    [slack] = hooks.requests
    url = slack.body["text"].removeprefix("*req-csv-001 ready*\n<").removesuffix("|download>")
    assert slack.body == {"text": f"*req-csv-001 ready*\n<{url}|download>"}
    assert urlsplit(url).path == urlsplit(export.signed_url).path
    assert signature(url)["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"


def test_a_medium_that_stays_down_gets_one_try_per_message_after_that(servers, instance, monkeypatch):
    from export_pipeline.orchestration import notification_sensors

    monkeypatch.setattr(notification_sensors, "_down_until", {})
    smtp, hooks = servers
    with WebhookServer(fail_next=100) as broken:
        monkeypatch.setenv("EXPORT_SLACK_WEBHOOK_URL", broken.url("/slack/down"))
        defs = build_definitions()
        job = defs.resolve_job_def("saved_export_daily_entries")
        first = job.execute_in_process(partition_key="2024-04-02", instance=instance)
        run_sensor(defs, instance, first)
        assert broken.fail_next == 100 - 3  # all three attempts
        second = job.execute_in_process(partition_key="2024-04-03", instance=instance)
        run_sensor(defs, instance, second)
        assert broken.fail_next == 100 - 4  # one try: the medium is known to be down
    assert len(smtp.messages) == 2  # the other media were not held up


def test_a_title_with_a_multi_line_error_is_sent_on_one_line(servers, instance, tmp_path, caplog):
    """``{{error}}`` lists each problem on its own line; in a title (an email's subject) it must
    still go out, on one line."""
    smtp, hooks = servers
    body = copy.deepcopy(SEED_BODY)
    for metric_request in body["metricRequests"]:
        del metric_request["start"], metric_request["end"]
    wrong = {"heading": "Wrong", "metricId": "entries-by-day", "fetchValue": "nope"}
    body["csvFormat"]["columns"] += [wrong, {**wrong, "heading": "Wronger", "fetchValue": "nada"}]
    (tmp_path / "definitions" / "daily.yaml").write_text(yaml.safe_dump({
        "name": "daily-entries", "cadence": "daily", "start": "2024-04-01",
        "timezone": "Europe/Berlin", "request": body, "notification": {"messages": [
            {"policy": "onFailure", "medium": "email", "target": "ops@example.com",
             "title": "{{name}} failed: {{error}}", "text": "{{error}}"},
        ]},
    }))
    defs = build_definitions()
    result = defs.resolve_job_def("saved_export_daily_entries").execute_in_process(
        partition_key="2024-04-02", instance=instance, raise_on_error=False
    )
    assert not result.success
    run_sensor(defs, instance, result, caplog.handler)
    assert "not delivered" not in caplog.text
    [mail] = smtp.messages
    subject = " ".join(mail["Subject"].split())  # unfolded
    # the paths of the definition file, not of the envelope the run wraps its request in
    assert subject.startswith("daily-entries failed: request.csvFormat.columns[2].fetchValue")
    assert "columns[3].fetchValue" in subject
    assert len(mail.get_payload(decode=True).decode().strip().splitlines()) == 2


def test_a_run_from_the_asset_page_that_fails_before_its_first_step_is_still_notified(
    servers, instance, monkeypatch
):
    """Materialize (or a backfill) from the asset page launches Dagster's own asset job, with
    none of the saved export's tags; here the run fails as its resources start (the export
    bucket is gone), before the step that would add them."""
    smtp, hooks = servers
    monkeypatch.setenv("EXPORT_BUCKET", "no-such-bucket")
    defs = build_definitions()
    key = dg.AssetKey(["saved_exports", "daily-entries"])
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key="2024-04-02", asset_selection=[key], instance=instance, raise_on_error=False,
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.asset_selection == {key} and "export_pipeline/notification" not in run.tags
    run_sensor(defs, instance, result)
    [mail] = smtp.messages
    assert mail["Subject"] == "Export daily-entries FAILED"
    text = mail.get_payload(decode=True).decode()
    assert text.startswith("2024-04-02T00:00:00+02:00/2024-04-03T00:00:00+02:00: ")
    assert "no-such-bucket" in text
    assert [r.path.split("/")[1] for r in hooks.requests] == ["slack", "discord", "telegram"]


def test_saved_exports_materialized_in_one_run_each_send_their_own_messages(
    servers, instance, tmp_path
):
    """Saved exports of the same partitioning can be selected and materialized together (one
    run): each one's messages go out, each with its own file's signed URL."""
    smtp, hooks = servers
    body = copy.deepcopy(SEED_BODY)
    for metric_request in body["metricRequests"]:
        del metric_request["start"], metric_request["end"]
    (tmp_path / "definitions" / "other.yaml").write_text(yaml.safe_dump({
        "name": "other", "cadence": "daily", "start": "2024-04-01", "timezone": "Europe/Berlin",
        "request": body, "notification": {"messages": [
            {"policy": "onSuccess", "medium": "slack", "title": "{{name}} {{partition}}", "text": "{{key}}"},
        ]},
    }))
    defs = build_definitions()
    keys = [dg.AssetKey(["saved_exports", "daily-entries"]), dg.AssetKey(["saved_exports", "other"])]
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key="2024-04-02", asset_selection=keys, instance=instance,
    )
    assert result.success
    run_sensor(defs, instance, result)
    slack = sorted(r.body["text"] for r in hooks.to("/slack"))
    assert slack[0].startswith("*daily-entries ready*\n<http") and "exports/daily-entries/2024-04-02.csv" in slack[0]
    assert slack[1] == "*other 2024-04-02*\nexports/other/2024-04-02.csv"
    [mail] = smtp.messages
    assert mail["Subject"] == "Export daily-entries ready"
    assert "exports/daily-entries/2024-04-02.csv" in mail.get_payload(decode=True).decode()
