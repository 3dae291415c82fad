"""A local S3-compatible server (moto, on loopback) for the demo and for trying things out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def local_s3_server() -> Iterator[str]:
    """Run moto's S3 server on 127.0.0.1 on a free port; yields its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise RuntimeError(
            "the local S3 server needs moto: pip install 'export-pipeline[demo]'"
        ) from None
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
