"""``export-pipeline run`` shows the run's progress on stderr: a bar on a terminal, plain
lines otherwise. A real process; the terminal is a real pseudo-terminal."""

from __future__ import annotations

import copy
import json
import os
import pty
import subprocess
import sys
import threading

from export_pipeline_tests.support.requests import SEED_BODY

BODY = copy.deepcopy(SEED_BODY)
# 2024-01-01 .. 2024-04-30: 121 days in two 90-day windows, two store reads, 121 daily rows
BODY["metricRequests"][0]["start"] = "2024-01-01T00:00:00Z"


def _env(demo_store_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["EXPORT_METRICS_PATH"] = str(demo_store_path)
    return env


def test_plain_progress_lines_when_stderr_is_not_a_terminal(tmp_path, demo_store_path, bucket):
    (tmp_path / "r.json").write_text(json.dumps(BODY))
    done = subprocess.run([sys.executable, "-m", "export_pipeline", "run", str(tmp_path / "r.json")],
                          env=_env(demo_store_path), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["rows"] == 121
    assert "progress: 2/2 store reads, 121 rows" in done.stderr.splitlines()
    assert "\x1b[K" not in done.stderr


def test_a_bar_redrawn_in_place_on_a_terminal(tmp_path, demo_store_path, bucket):
    (tmp_path / "r.json").write_text(json.dumps(BODY))
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "export_pipeline", "run", str(tmp_path / "r.json")],
        env=_env(demo_store_path), stdout=subprocess.PIPE, stderr=terminal,
    )
    os.close(terminal)
    seen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    stdout, _ = process.communicate(timeout=180)
    reader.join(timeout=30)
    os.close(controller)
    assert process.returncode == 0, seen.decode(errors="replace")
    assert json.loads(stdout.decode().splitlines()[-1])["rows"] == 121
    text = seen.decode(errors="replace")
    bar = "[" + "#" * 30 + "] 2/2 store reads, 121 rows"
    assert "\r\x1b[K" + bar in text
    assert "combined: 121 rows" in text  # the run's log still shows, above the bar
    assert "progress:" not in text
