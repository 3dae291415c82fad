"""A loopback HTTP relay in front of the S3 test server that can hold multipart uploads open.

Every request is passed through unchanged, except that while the gate is closed a part upload
(``PUT …?partNumber=…&uploadId=…``) is held: the relay never answers it, so the uploading
process waits mid-upload with its multipart upload open in the store, for as long as a test
needs (to kill or stop that process there). Nothing is timed: the test waits on ``held``.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection", "content-length"}


class S3Gate:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.closed = threading.Event()
        self.released = threading.Event()
        self.held: list[str] = []
        self._changed = threading.Condition()
        gate = self

        class Relay(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _relay(self) -> None:
                body = self._body()
                query = parse_qs(urlsplit(self.path).query)
                if (self.command == "PUT" and "partNumber" in query and "uploadId" in query
                        and gate.closed.is_set()):
                    with gate._changed:
                        gate.held.append(self.path)
                        gate._changed.notify_all()
                    gate.released.wait()
                    self.close_connection = True
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = http.client.HTTPConnection(*gate.upstream, timeout=120)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                finally:
                    upstream.close()
                self.send_response_only(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> S3Gate:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def close(self) -> None:
        """From now on hold every part upload."""
        self.closed.set()

    def open(self) -> None:
        """Pass part uploads again; those held stay unanswered (their senders were killed)."""
        self.closed.clear()

    def wait_for_held(self, count: int, timeout: float) -> bool:
        """Whether ``count`` part uploads in all are being held before ``timeout`` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.held) >= count, timeout)
