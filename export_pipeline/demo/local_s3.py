"""A local S3-compatible server (moto, on loopback) for the demo and for trying things out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def local_s3_server(port: int = 0) -> Iterator[str]:
    """Run moto's S3 server on 127.0.0.1 (on a free port unless given); yields its endpoint."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise RuntimeError(
            "the local S3 server needs moto: pip install 'export-pipeline[demo]'"
        ) from None
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
