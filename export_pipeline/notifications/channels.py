"""Deliver one rendered message: email over SMTP, Slack and Discord webhooks, the Telegram Bot
API. Each sender raises on failure; ``deliver_with_retry`` retries with exponential backoff.

Every base URL is a setting, so a test (or a proxy) points them at its own server.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit

from export_pipeline.destinations.sealing import SHORT_SECRET, mask_secrets

TIMEOUT_SECONDS = 10
DISCORD_LIMIT = 2000
TELEGRAM_LIMIT = 4096


class DeliveryError(RuntimeError):
    pass


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    sender: str = "export-pipeline@localhost"
    security: str = "starttls"  # "starttls", "ssl" or "none"


def send_email(settings: SmtpSettings, to: str, subject: str, text: str) -> None:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    context = ssl.create_default_context()
    if settings.security == "ssl":
        server = smtplib.SMTP_SSL(settings.host, settings.port, timeout=TIMEOUT_SECONDS, context=context)
    else:
        server = smtplib.SMTP(settings.host, settings.port, timeout=TIMEOUT_SECONDS)
    with server:
        if settings.security == "starttls":
            server.starttls(context=context)
        if settings.username:
            server.login(settings.username, settings.password or "")
        server.send_message(message)


def post_json(url: str, payload: dict) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "export-pipeline"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            response.read()
    except urllib.error.HTTPError as error:
        detail = error.read()[:200].decode("utf-8", "replace")
        raise DeliveryError(f"HTTP {error.code} from the webhook: {detail}") from None


def send_slack(webhook_url: str, title: str, text: str) -> None:
    post_json(webhook_url, {"text": f"*{title}*\n{text}"})


def send_discord(webhook_url: str, title: str, text: str) -> None:
    post_json(webhook_url, {"content": f"**{title}**\n{text}"[:DISCORD_LIMIT]})


def send_telegram(api_url: str, bot_token: str, chat_id: str, title: str, text: str) -> None:
    url = f"{api_url.rstrip('/')}/bot{bot_token}/sendMessage"
    post_json(url, {"chat_id": chat_id, "text": f"{title}\n\n{text}"[:TELEGRAM_LIMIT]})


def deliver_with_retry(
    send: Callable[[], None],
    *,
    attempts: int = 3,
    backoff_seconds: float = 1.0,
    on_retry: Callable[[int, Exception], None] = lambda attempt, error: None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Call ``send`` until it succeeds, at most ``attempts`` times, waiting ``backoff``,
    ``2 x backoff``… between tries; the last error is raised."""
    for attempt in range(1, attempts + 1):
        try:
            send()
            return
        except Exception as error:
            if attempt == attempts:
                raise
            on_retry(attempt, error)
            sleep(backoff_seconds * 2 ** (attempt - 1))


@dataclass(frozen=True)
class Channels:
    """Where each medium delivers; a medium left unset cannot be used (delivery says so)."""

    smtp: SmtpSettings | None = None
    slack_webhook_url: str | None = None
    discord_webhook_url: str | None = None
    telegram_bot_token: str | None = None
    telegram_api_url: str = "https://api.telegram.org"

    def sender_for(self, medium: str, target: str | None, title: str, text: str) -> Callable[[], None]:
        """A call that delivers the message, or ``DeliveryError`` when it cannot be sent. What it
        raises is logged on the sensor's tick: the webhook URLs, the bot token and the SMTP
        password are masked in it, whatever the library put there (urllib quotes the whole URL
        when it cannot use it)."""
        send = self._sender(medium, target, title, text)
        secrets = self._secrets()

        def masked() -> None:
            try:
                send()
            except Exception as error:
                raise DeliveryError(mask_secrets(str(error), secrets)) from None

        return masked

    def _secrets(self) -> list[str]:
        secrets = [self.telegram_bot_token or "", (self.smtp.password or "") if self.smtp else ""]
        for url in (self.slack_webhook_url, self.discord_webhook_url):
            if url:  # http.client quotes only the path when that is what it refuses
                parts = urlsplit(url)
                paths = [parts.path + (f"?{parts.query}" if parts.query else ""), parts.path]
                secrets += [url, *(p for p in paths if len(p) >= SHORT_SECRET)]
        return secrets

    def _sender(self, medium: str, target: str | None, title: str, text: str) -> Callable[[], None]:
        if medium == "email":
            if self.smtp is None:
                raise DeliveryError("email is not configured (set EXPORT_SMTP_HOST)")
            if not target:
                raise DeliveryError("an email message needs a target address")
            return lambda: send_email(self.smtp, target, title, text)
        if medium == "slack":
            if not self.slack_webhook_url:
                raise DeliveryError("Slack is not configured (set EXPORT_SLACK_WEBHOOK_URL)")
            return lambda: send_slack(self.slack_webhook_url, title, text)
        if medium == "discord":
            if not self.discord_webhook_url:
                raise DeliveryError("Discord is not configured (set EXPORT_DISCORD_WEBHOOK_URL)")
            return lambda: send_discord(self.discord_webhook_url, title, text)
        if medium == "telegram":
            if not self.telegram_bot_token:
                raise DeliveryError("Telegram is not configured (set EXPORT_TELEGRAM_BOT_TOKEN)")
            if not target:
                raise DeliveryError("a Telegram message needs a target chat id")
            return lambda: send_telegram(
                self.telegram_api_url, self.telegram_bot_token, target, title, text
            )
        raise DeliveryError(f"unknown medium {medium!r}")
