"""Every request example in the README runs on the demo store and gives meaningful output:
rows, and no column that is empty from top to bottom. Examples are the JSON requests in fenced
json blocks and heredocs, the request files the README names, and the saved exports in its
yaml blocks (their first partition)."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import yaml
from pypdf import PdfReader

from export_pipeline.saved_exports.definitions import parse_saved_export

from export_pipeline_tests.support.requests import REPO, download, parse_csv, run_job

FENCED = re.compile(r"^```json\n(.*?)^```", re.S | re.M)
HEREDOC = re.compile(r"<<'JSON'\n(.*?)^JSON$", re.S | re.M)
YAML = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
FILES = re.compile(r"export_pipeline/examples/[\w./-]+\.json")
PARTITION = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(weeks=1)}


def is_request(document) -> bool:
    if not isinstance(document, dict):
        return False
    body = document.get("data", {}).get("body") if "data" in document else document
    return (
        isinstance(body, dict) and isinstance(body.get("csvFormat"), dict)
        and isinstance(body.get("metricRequests"), list)
        and all(isinstance(m, dict) for m in body["metricRequests"])
    )


def readme_requests() -> list[tuple[str, dict]]:
    """(line number, request) for each JSON request in a fenced json block or a JSON heredoc."""
    text = (REPO / "README.md").read_text()
    found = []
    for pattern in (FENCED, HEREDOC):
        for match in pattern.finditer(text):
            try:
                document = json.loads(match.group(1))
            except json.JSONDecodeError:
                continue  # a fragment (`"format": {…}`), not a whole document
            if is_request(document):
                found.append((f"README.md:{text.count(chr(10), 0, match.start()) + 1}", document))
    for path in sorted(set(FILES.findall(text))):
        found.append((path, json.loads((REPO / path).read_text())))
    for match in YAML.finditer(text):
        definition = yaml.safe_load(match.group(1))
        if isinstance(definition, dict) and "request" in definition and "name" in definition:
            saved = parse_saved_export(definition)
            start = saved.start.replace(tzinfo=ZoneInfo(saved.timezone))
            where = f"README.md:{text.count(chr(10), 0, match.start()) + 1}"
            found.append((where, saved.request_for_window(start, start + PARTITION[saved.cadence.value])))
    return found


EXAMPLES = readme_requests()


def test_the_readme_has_its_request_examples():
    extensions = {
        (d.get("format") or {}).get("extension", "csv").lower() if isinstance(d.get("format"), dict) else "csv"
        for _, d in EXAMPLES
    }
    assert len(EXAMPLES) >= 3 and {"csv", "xlsx", "pdf"} <= extensions, [w for w, _ in EXAMPLES]


def columns_of(rows: list[list]) -> list[list]:
    return [list(column) for column in zip(*rows)]


@pytest.mark.parametrize("where, document", EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_readme_example_gives_rows_and_no_empty_column(where, document, demo_store_path, bucket, monkeypatch):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    result = run_job(document)
    assert result.success, (where, result.get_step_failure_events())
    out = result.output_for_node("materialize_export")
    assert out.rows > 0, where
    data = download(out.signed_url)
    if out.key.endswith(".pdf"):
        text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
        assert "Executive summary" in text and "No data in the requested range" not in text, where
        return
    if out.key.endswith(".xlsx"):
        sheet = openpyxl.load_workbook(io.BytesIO(data)).active
        header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
        empty = lambda v: v is None  # noqa: E731
    else:
        header, *rows = parse_csv(data)
        empty = lambda v: v == ""  # noqa: E731
    assert len(rows) == out.rows, where
    blank = [h for h, column in zip(header, columns_of(rows)) if all(empty(v) for v in column)]
    assert not blank, (where, blank)


INSTANCE_KEYS = {"run_queue", "sensors", "code_servers", "run_launcher", "run_coordinator",
                 "run_monitoring", "run_retries", "telemetry"}


def readme_instance_settings() -> list[dict]:
    """The yaml blocks that are Dagster instance settings (what goes into ``dagster.yaml``)."""
    blocks = [yaml.safe_load(m.group(1)) for m in YAML.finditer((REPO / "README.md").read_text())]
    return [b for b in blocks if isinstance(b, dict) and b and set(b) <= INSTANCE_KEYS]


def test_the_readme_s_instance_settings_are_what_dagster_reads(tmp_path):
    """Each dagster.yaml excerpt the README gives is taken by Dagster as written: a misspelt
    key would be refused, a misplaced one ignored."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    settings = readme_instance_settings()
    assert any({"run_coordinator", "sensors"} <= set(s) for s in settings)
    for i, block in enumerate(settings):
        home = tmp_path / str(i)
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump(block))
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            if "run_queue" in block:
                queue = instance.run_coordinator.get_run_queue_config()
                assert queue.max_concurrent_runs == block["run_queue"]["max_concurrent_runs"]
            if "config" in block.get("run_coordinator", {}):
                coordinator = instance.run_coordinator
                assert type(coordinator).__name__ == block["run_coordinator"]["class"]
                config = block["run_coordinator"]["config"]
                assert coordinator.get_run_queue_config().max_concurrent_runs == config["max_concurrent_runs"]
                assert coordinator.dequeue_interval_seconds == config["dequeue_interval_seconds"]
            if "sensors" in block:
                assert instance.get_settings("sensors") == block["sensors"]
