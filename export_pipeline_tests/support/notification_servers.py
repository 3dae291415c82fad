"""Real local servers standing in for the notification services: an SMTP server (aiosmtpd)
with a login, and one HTTP server that answers as Slack, Discord and the Telegram Bot API.
Both listen on 127.0.0.1 only and record what they receive."""

from __future__ import annotations

import email
import json
import threading
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from export_pipeline_tests.support.helpers import free_port

SMTP_USER, SMTP_PASSWORD = "exporter", "s3cret-pass"


class _MailHandler:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.recipients: list[list[str]] = []  # each message's envelope recipients (RCPT TO)
        self.received = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        with self.received:
            self.messages.append(email.message_from_bytes(envelope.content))
            self.recipients.append(list(envelope.rcpt_tos))
            self.received.notify_all()
        return "250 OK"


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(), auth_data.password.decode()
    ) == (SMTP_USER, SMTP_PASSWORD)
    return AuthResult(success=ok)


class SmtpServer:
    def __init__(self) -> None:
        self.handler = _MailHandler()
        self.port = free_port()
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port,
            authenticator=_authenticate, auth_required=True, auth_require_tls=False,
        )

    @property
    def messages(self) -> list[Message]:
        return self.handler.messages

    @property
    def recipients(self) -> list[list[str]]:
        return self.handler.recipients

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


@dataclass
class Received:
    path: str
    body: dict


@dataclass
class WebhookServer:
    """Records every POST; ``fail_next`` answers that many requests with HTTP 500 first."""

    requests: list[Received] = field(default_factory=list)
    fail_next: int = 0
    port: int = 0

    def __enter__(self) -> WebhookServer:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if recorder.fail_next > 0:
                    recorder.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"try again")
                    return
                recorder.requests.append(Received(self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, prefix: str) -> list[Received]:
        return [r for r in self.requests if r.path.startswith(prefix)]
