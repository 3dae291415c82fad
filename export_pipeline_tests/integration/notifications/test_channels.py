"""Notification messages and their delivery, against a real SMTP server and a real HTTP server."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

from export_pipeline.notifications.channels import (
    Channels,
    DeliveryError,
    SmtpSettings,
    deliver_with_retry,
    send_email,
)
from export_pipeline.notifications.messages import (
    Policy,
    email_recipient,
    is_email_address,
    parse_notification,
    render,
)
from export_pipeline_tests.support.notification_servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    SmtpServer,
    WebhookServer,
)


def message(**overrides):
    return {"policy": "onSuccess", "medium": "slack", "title": "t", "text": "x", **overrides}


def test_templates_are_checked_against_the_policy():
    notification, problems = parse_notification({"messages": [
        message(text="{{signedUrl}} {{error}}"),
        message(policy="onFailure", title="{{ name }} failed", text="{{error}} {{rows}}"),
        message(medium="pigeon", text="{{nope}}"),
        message(medium="email", target="not-an-address"),
        message(medium="telegram"),
        message(medium="email", target="a@b.example\r\nBcc: x@evil.example", title="t\r\nX: y"),
        message(medium="telegram", target="12 34"),
        message(medium="email", target="a@=?utf-8?q?evil.example?="),
        message(medium="email", target="ops@acme.example."),
        message(medium="telegram", target="-1001234567\n"),
    ]})
    assert notification is None
    assert {(p.path, p.message.split(" (")[0]) for p in problems} == {
        ("notification.messages[2].medium", "'pigeon' is not one of 'email', 'slack', 'discord' or 'telegram'"),
        ("notification.messages[0].text", "{{error}} has no value onSuccess"),
        ("notification.messages[1].text", "{{rows}} has no value onFailure"),
        ("notification.messages[3].target", "required for email: one recipient's address"),
        ("notification.messages[5].target", "required for email: one recipient's address"),
        ("notification.messages[5].title", "must be one line, without control characters"),
        ("notification.messages[6].target", "required for telegram: the chat id"),
        ("notification.messages[2].text", "unknown placeholder {{nope}}"),
        ("notification.messages[4].target", "required for telegram: the chat id"),
        # an encoded word the mailer decodes to another domain, or no address it can send to
        ("notification.messages[7].target", "required for email: one recipient's address"),
        ("notification.messages[8].target", "required for email: one recipient's address"),
        ("notification.messages[9].target", "required for telegram: the chat id"),
    }


def test_render_fills_placeholders():
    assert render("{{name}}: {{ rows }} rows, {{missing}}.", {"name": "a", "rows": 3}) == "a: 3 rows, ."


def test_valid_notification_splits_by_policy():
    notification, problems = parse_notification({"messages": [
        message(), message(policy="onFailure", text="{{error}}"),
    ]})
    assert problems == []
    assert [m.policy for m in notification.for_policy(Policy.on_failure)] == [Policy.on_failure]


def test_email_with_login_reaches_a_real_smtp_server():
    with SmtpServer() as smtp:
        settings = SmtpSettings(
            host="127.0.0.1", port=smtp.port, username=SMTP_USER, password=SMTP_PASSWORD,
            sender="exports@example.com", security="none",
        )
        Channels(smtp=settings).sender_for("email", "ops@example.com", "Export ready", "é https://x")()
        [mail] = smtp.messages
    assert mail["Subject"] == "Export ready" and mail["To"] == "ops@example.com"
    assert "é https://x" in mail.get_payload(decode=True).decode("utf-8")


def test_email_recipient_is_the_envelope_recipient_the_smtp_server_gets():
    """The tenants' recipient grants are matched against ``email_recipient``: it must be where
    the mail really goes, odd targets included."""
    targets = ["ops@acme.example", "a@=?utf-8?q?evil.example?=", "=?utf-8?q?x=40evil.example?=@acme.example"]
    with SmtpServer() as smtp:
        settings = SmtpSettings(host="127.0.0.1", port=smtp.port, username=SMTP_USER,
                                password=SMTP_PASSWORD, security="none")
        for target in targets:
            send_email(settings, target, "t", "x")
        assert smtp.recipients == [[email_recipient(t)] for t in targets]
    assert [email_recipient(t) for t in targets[:2]] == ["ops@acme.example", "a@evil.example"]
    assert [is_email_address(t) for t in targets] == [True, False, False]


def test_webhooks_and_telegram_payloads():
    with WebhookServer() as hooks:
        channels = Channels(
            slack_webhook_url=hooks.url("/slack/T1/B2/secret"),
            discord_webhook_url=hooks.url("/discord/api/webhooks/1/tok"),
            telegram_bot_token="123:ABC", telegram_api_url=hooks.url("/telegram"),
        )
        for medium in ("slack", "discord", "telegram"):
            channels.sender_for(medium, "-100200", "Title", "Body")()
    assert hooks.to("/slack")[0].body == {"text": "*Title*\nBody"}
    assert hooks.to("/discord")[0].body == {"content": "**Title**\nBody"}
    telegram = hooks.to("/telegram")[0]
    assert telegram.path == "/telegram/bot123:ABC/sendMessage"
    assert telegram.body == {"chat_id": "-100200", "text": "Title\n\nBody"}


def test_unconfigured_medium_says_what_to_set():
    with pytest.raises(DeliveryError, match="EXPORT_SLACK_WEBHOOK_URL"):
        Channels().sender_for("slack", None, "t", "x")
    with pytest.raises(DeliveryError, match="target chat id"):
        Channels(telegram_bot_token="1:A").sender_for("telegram", None, "t", "x")


def test_retry_with_backoff_after_server_errors():
    waits, retries = [], []
    with WebhookServer(fail_next=2) as hooks:
        send = Channels(slack_webhook_url=hooks.url("/slack/x")).sender_for("slack", None, "t", "x")
        deliver_with_retry(
            send, attempts=3, backoff_seconds=0.5, sleep=waits.append,
            on_retry=lambda attempt, error: retries.append((attempt, str(error))),
        )
    assert len(hooks.requests) == 1
    assert waits == [0.5, 1.0]
    assert retries[0] == (1, "HTTP 500 from the webhook: try again")


def test_retry_gives_up_and_raises_the_last_error():
    with WebhookServer(fail_next=5) as hooks:
        send = Channels(slack_webhook_url=hooks.url("/slack/x")).sender_for("slack", None, "t", "x")
        with pytest.raises(DeliveryError, match="HTTP 500"):
            deliver_with_retry(send, attempts=2, backoff_seconds=0, sleep=lambda s: None)
    assert hooks.requests == [] and hooks.fail_next == 3
