"""What a failed delivery says is logged on the sensor's tick: never the webhook URL, the bot
token or the SMTP password, whatever the library put in its error."""

import pytest

from export_pipeline.notifications.channels import Channels, DeliveryError, SmtpSettings

SLACK = "hooks.slack.example/services/T0/B0/slack-secret-path"  # no scheme: a copy-paste slip
DISCORD = "https://discord.example/api/webhooks/1/discord secret"  # a space in the path
TOKEN = "4242:TELEGRAM-SECRET"


@pytest.mark.parametrize("medium", ["slack", "discord", "telegram"])
def test_a_misconfigured_url_is_not_quoted_in_the_error(medium):
    channels = Channels(
        slack_webhook_url=SLACK, discord_webhook_url=DISCORD, telegram_bot_token=TOKEN,
        telegram_api_url="api.telegram.example",  # no scheme either
    )
    send = channels.sender_for(medium, "-1001", "t", "x")
    with pytest.raises(DeliveryError) as caught:
        send()
    message = str(caught.value)
    assert message  # the reason is still there
    for secret in ("slack-secret-path", "discord secret", "/api/webhooks/1/", "TELEGRAM-SECRET"):
        assert secret not in message


def test_an_smtp_error_never_carries_the_password(monkeypatch):
    import smtplib

    def refuse(self, user, password, **kwargs):
        raise smtplib.SMTPAuthenticationError(535, f"bad login {user}/{password}".encode())

    monkeypatch.setattr(smtplib.SMTP, "connect", lambda self, host, port, **kw: (220, b"hi"))
    monkeypatch.setattr(smtplib.SMTP, "ehlo_or_helo_if_needed", lambda self: None)
    monkeypatch.setattr(smtplib.SMTP, "login", refuse)
    monkeypatch.setattr(smtplib.SMTP, "quit", lambda self: None)
    settings = SmtpSettings(host="127.0.0.1", port=25, username="u", password="smtp-pass-123", security="none")
    with pytest.raises(DeliveryError) as caught:
        Channels(smtp=settings).sender_for("email", "a@example.com", "t", "x")()
    assert "bad login u/***" in str(caught.value)
