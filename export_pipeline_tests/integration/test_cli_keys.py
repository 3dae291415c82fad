"""``export-pipeline keys new``: a new key, shown once, and the tenants-file line holding only
its hash. A real process."""

from __future__ import annotations

import subprocess
import sys

from export_pipeline.service.tenants import load_document, parse_tenants


def _keys(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export_pipeline", "keys", "new", *args],
                          capture_output=True, text=True, timeout=120)


def test_the_printed_line_authenticates_the_printed_key_and_holds_no_key():
    first, second = _keys("--tenant", "acme", "--name", "reporting"), _keys("--tenant", "acme")
    assert first.returncode == second.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    key, entry = lines[1].strip(), lines[3].strip()
    assert key.startswith("exk_") and key not in entry
    assert key != second.stdout.splitlines()[1].strip()
    directory = parse_tenants({"tenants": [{"name": "acme", "keys": load_document(entry)}]})
    caller = directory.authenticate(key)
    assert caller.tenant.name == "acme" and caller.key_name == "reporting"


def test_a_tenant_name_the_file_would_refuse_is_refused():
    done = _keys("--tenant", "Not A Name")
    assert done.returncode == 1 and "--tenant" in done.stderr and "exk_" not in done.stdout
