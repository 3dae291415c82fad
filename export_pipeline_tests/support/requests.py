"""The seed-000 request the tests start from, and running the export job on a document."""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from pathlib import Path

REPO = Path(__file__).parents[2]

SEED_ENVELOPE = json.loads(
    (REPO / "export_pipeline" / "examples" / "seed_000_request.json").read_text()
)
SEED_BODY = SEED_ENVELOPE["data"]["body"]


def run_job(document, instance=None):
    """Run the code location's export job in process on ``document``; failures are returned."""
    import dagster as dg

    from export_pipeline.orchestration.definitions import build_definitions

    job = build_definitions().resolve_job_def("export_job")
    return job.execute_in_process(
        run_config=document, instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def parse_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
