"""A tenants file the service refuses: ``export-pipeline serve`` stops before it answers, with
each problem's path in the file. A real process."""

from __future__ import annotations

import json
import subprocess
import sys

from export_pipeline.service.tenants import key_hash, new_key
from export_pipeline_tests.conftest import FAKE_CREDENTIALS
from export_pipeline_tests.support.helpers import free_port
from export_pipeline_tests.support.requests import REPO
from export_pipeline_tests.support.service import service_environment


def test_a_bad_email_recipient_stops_the_start_with_its_path(tmp_path, s3_endpoint, demo_store_path):
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(json.dumps({"tenants": [{
        "name": "acme", "keys": [{"name": "ci", "sha256": key_hash(new_key())}],
        "email_recipients": ["ops@acme.example", "*@acme.example", "@acme.example\nBcc: x@evil.example"],
    }]}))
    env = service_environment(tmp_path / "dagster_home", tenants, "exports", demo_store_path,
                              s3_endpoint, FAKE_CREDENTIALS)
    done = subprocess.run([sys.executable, "-m", "export_pipeline", "serve", "--port", str(free_port())],
                          env=env, cwd=str(REPO), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "cannot start the service" in done.stderr
    assert "tenants[0].email_recipients[1]: " in done.stderr
    assert "tenants[0].email_recipients[2]: " in done.stderr
    assert "email_recipients[0]" not in done.stderr and "Uvicorn running" not in done.stderr
