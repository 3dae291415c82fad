"""The Reports page at ``GET /`` driven in a real headless Chromium against the real service
(its own process, a Dagster instance that executes the runs, moto S3): signing in, creating
exports from a request file and from a saved export, the list refreshing by itself while they
run, downloads, errors, filters, deletion and tenants kept apart."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sqlite3
import threading
import urllib.request
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from export_pipeline_tests.integration.service.conftest import SEED_ENTITY
from export_pipeline_tests.support.browser import Browser, chromium_available
from export_pipeline_tests.support.reference import read_rows
from export_pipeline_tests.support.requests import REPO, SEED_BODY, parse_csv
from export_pipeline_tests.support.service import wait_for_status

pytestmark = pytest.mark.skipif(
    not chromium_available() and not os.environ.get("CI"),
    reason="needs chromium and chromedriver; .ci/run installs them (in CI these tests run)",
)

SEED_FILE = REPO / "export_pipeline" / "examples" / "seed_000_request.json"
RUN_TIMEOUT = 300


@pytest.fixture(scope="module")
def browser(tmp_path_factory, service):
    with Browser.start(tmp_path_factory.mktemp("chromium"), service.url) as browser:
        yield browser


@pytest.fixture(scope="module")
def acme(browser, service):
    """The page signed in as acme (after a wrong key was refused)."""
    browser.open()
    browser.sign_in("exk_not-a-key")
    browser.sign_in(service.keys["acme"])
    return browser


def _uploaded(browser: Browser, path: Path) -> str:
    """Upload a request file; the id of the export it created (the new row)."""
    before = set(browser.row_ids())
    browser.upload(path)
    browser.wait(lambda: set(browser.row_ids()) - before,
                 lambda: f"the new export's row: {browser.text('create-message')} {browser.problems()}")
    (export_id,) = set(browser.row_ids()) - before
    return export_id


def test_a_wrong_key_gets_a_message_and_a_right_key_signs_in(browser, service):
    browser.open()
    browser.sign_in("exk_not-a-key")
    assert "Wrong key" in browser.text("sign-in-message")
    assert not browser.visible("reports")
    assert browser.script("return sessionStorage.length") == 0
    browser.sign_in(service.keys["acme"])
    assert browser.visible("reports") and not browser.visible("sign-in")
    assert list(browser.script("return Object.values(sessionStorage)")) == [service.keys["acme"]]


def test_an_uploaded_request_runs_to_complete_by_itself_and_its_link_downloads_the_file(acme, service):
    export_id = _uploaded(acme, SEED_FILE)
    seen = acme.watch(export_id, {"complete", "failed"}, RUN_TIMEOUT)
    statuses = [status for status, _ in seen]
    assert statuses[0] in ("queued", "running") and statuses[-1] == "complete", statuses
    # A run can finish between two polls; whenever the page saw it running, it showed a bar.
    running = [bar for status, bar in seen if status == "running"]
    assert all(bar is not None and bar["max"] >= 1 for bar in running), seen
    row = acme.row(export_id)
    assert row["format"] == "CSV" and row["rows"] == "30"  # one row per day of April
    assert row["created"].startswith(datetime.now(timezone.utc).date().isoformat())
    assert acme.polling() == "no"

    downloaded = acme.download(export_id)
    with service.client("acme") as client:
        url = client.get(f"/v1/exports/{export_id}").json()["url"]
    with urllib.request.urlopen(url) as response:
        direct = response.read()
    assert downloaded == direct
    lines = parse_csv(downloaded)
    assert lines[0] == ["Date", "Entries"] and len(lines) == 31


def test_every_control_is_named_and_the_table_has_header_cells_and_nothing_comes_from_elsewhere(acme, service):
    controls = acme.controls()
    assert {c["id"] for c in controls} >= {
        "request-file", "saved-name", "saved-start", "saved-end", "created-from", "created-until",
        "format-filter", "sign-out"}
    assert all(c["name"].strip() for c in controls), [c for c in controls if not c["name"].strip()]
    names = {c["id"]: c["name"] for c in controls}
    assert names["saved-start"].startswith("Start") and names["format-filter"].startswith("Format")
    assert {c["role"] for c in controls if c["tag"] == "button"} == {"button"}
    downloads = [c["name"] for c in controls if c["tag"] == "a"]
    assert downloads and all(n.startswith("Download ") for n in downloads)
    loaded = acme.script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert {"/static/app.js", "/static/style.css"} <= {u.removeprefix(service.url) for u in loaded}
    assert all(u.startswith(service.url + "/") for u in loaded), loaded  # nothing from elsewhere
    assert acme.script("return getComputedStyle(document.body).backgroundColor") == "rgb(246, 247, 249)"
    headers = acme.script("return [...document.querySelectorAll('#exports thead th')].map(th => th.scope)")
    assert set(headers) == {"col"} and len(headers) == 8


def test_a_failed_export_shows_each_error_with_its_path(acme, tmp_path):
    body = {**copy.deepcopy(SEED_BODY), "name": "to a refused server", "destinations": [{
        "type": "sftp", "server": "127.0.0.1", "port": 9, "username": "u", "password": "refused-anyway-7c1e", "path": "/in"}]}
    path = tmp_path / "refused.json"
    path.write_text(json.dumps(body))
    export_id = _uploaded(acme, path)
    acme.watch(export_id, {"complete", "failed"}, RUN_TIMEOUT)
    row = acme.row(export_id)
    assert row["status"] == "failed" and row["download"] is None
    assert row["errors"] and all(error.startswith("destinations[0]") for error in row["errors"]), row


YAML_WITH_PROBLEMS = """\
# a request with two mistakes
csvFormat:
  columns:
    - heading: Date
    - heading: Entries
      metricId: entries-by-day
      fetchValue: entries
  sortBy: [5]
  rowFilters: [entity]
metricRequests:
  - metricId: entries-by-day
    start: "2024-04-01T00:00:00Z"
    end: 2024-04-30T23:59:59Z
    entities: ["64a1b2c3d4e5f6a7b8c9d0e3"]
    entityType: location
    aggregationPeriod: fortnight
"""


def test_a_yaml_request_with_problems_lists_each_path_and_creates_nothing(acme, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(YAML_WITH_PROBLEMS)
    before = acme.row_ids()
    acme.upload(path)
    acme.wait(lambda: acme.problems(), "the problems")
    assert "problems" in acme.text("create-message")
    paths = {problem.split(":", 1)[0] for problem in acme.problems()}
    assert {"csvFormat.sortBy[0]", "metricRequests[0].aggregationPeriod"} <= paths, acme.problems()
    assert acme.row_ids() == before
    screenshot = tmp_path / "reports-page.png"  # to look at: a complete, a failed, the problems
    acme.driver.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")


def test_a_yaml_request_creates_an_xlsx_export_and_the_format_filter_keeps_one_format(acme, tmp_path):
    path = tmp_path / "april.yaml"
    path.write_text(YAML_WITH_PROBLEMS.replace("[5]", "[0]").replace("fortnight", "day")
                    + "format: {extension: xlsx}\nname: 'April, as a workbook'\n")
    export_id = _uploaded(acme, path)
    acme.watch(export_id, {"complete", "failed"}, RUN_TIMEOUT)
    row = acme.row(export_id)
    assert (row["name"], row["status"], row["format"], row["rows"]) == ("April, as a workbook", "complete", "XLSX", "30")
    formats = lambda: {r["format"] for r in acme.rows()}  # noqa: E731
    assert formats() == {"CSV", "XLSX"}
    acme.select_format("xlsx")
    acme.wait(lambda: formats() == {"XLSX"}, "only XLSX rows")
    assert acme.row_ids() == [export_id]
    acme.select_format("csv")
    acme.wait(lambda: formats() == {"CSV"}, "only CSV rows")
    acme.select_format("")
    acme.wait(lambda: formats() == {"CSV", "XLSX"}, "every row again")


def test_the_date_filter_keeps_the_days_asked_for(acme):
    today, everything = date.today(), set(acme.row_ids())
    assert everything
    acme.set_dates(today + timedelta(days=1), None)
    acme.wait(lambda: acme.row_ids() == [] and "No exports match" in acme.text("export-rows"), "no rows")
    acme.set_dates(None, today - timedelta(days=1))
    acme.wait(lambda: acme.row_ids() == [], "no rows")
    acme.set_dates(today, today)
    acme.wait(lambda: set(acme.row_ids()) == everything, "today's rows")
    acme.clear_filters()
    acme.wait(lambda: set(acme.row_ids()) == everything, "every row")


def test_a_saved_export_is_created_from_its_name_and_window(acme, demo_store_path):
    acme.create_saved("nope", "2024-04-01", "x")  # not granted: refused before the window is read
    acme.wait(lambda: acme.problems(), "the problems")
    assert {p.split(":", 1)[0] for p in acme.problems()} == {"savedExport"}
    acme.create_saved("daily-entries", "2024-04-01", "x")
    acme.wait(lambda: {p.split(":", 1)[0] for p in acme.problems()} == {"start", "end"},
              "the window's problems")
    before = set(acme.row_ids())
    acme.create_saved("daily-entries", "2024-04-01T00:00:00+02:00", "2024-04-03T00:00:00+02:00")
    acme.wait(lambda: set(acme.row_ids()) - before, "the new export's row")
    (export_id,) = set(acme.row_ids()) - before
    acme.watch(export_id, {"complete", "failed"}, RUN_TIMEOUT)
    row = acme.row(export_id)
    start = datetime(2024, 3, 31, 22, tzinfo=timezone.utc)  # Berlin's 2024-04-01 00:00
    hours = {r["timestamp"].replace(minute=0, second=0, microsecond=0) for r in read_rows(demo_store_path)
             if r["entity_id"] == SEED_ENTITY and start <= r["timestamp"] < start + timedelta(days=2)}
    assert row["status"] == "complete" and row["rows"] == str(len(hours))  # the hours with entries


def test_an_export_past_its_retention_says_expired_and_offers_no_link(acme, service):
    with service.client("acme") as client:
        created = client.post("/v1/exports", json=SEED_BODY).json()
        assert wait_for_status(client, created["id"], {"complete", "failed"})["status"] == "complete"
    acme.clear_filters()
    acme.wait(lambda: (acme.row(created["id"]) or {}).get("download"), "the new export's link")
    # The service's record made older than the retention (30 days by default)
    with sqlite3.connect(service.env["EXPORT_SERVICE_STATE"]) as db:
        month_ago = (datetime.now(timezone.utc) - timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert db.execute("UPDATE exports SET created = ? WHERE id = ?",
                          (month_ago, created["id"])).rowcount == 1
    acme.clear_filters()
    row = acme.wait(lambda: (r := acme.row(created["id"])) and r["downloadText"] == "Expired" and r,
                    lambda: f"the row marked expired: {acme.row(created['id'])}")
    assert row["download"] is None and row["status"] == "complete" and row["rows"] == "30"


def test_delete_asks_first_then_removes_the_row(acme, service):
    export_id = acme.row_ids()[0]
    acme.delete(export_id, confirm=False)
    assert export_id in acme.row_ids()
    acme.delete(export_id, confirm=True)
    acme.wait(lambda: export_id not in acme.row_ids(), "the row gone")
    assert "Deleted" in acme.text("list-message")
    with service.client("acme") as client:
        assert client.get(f"/v1/exports/{export_id}").status_code == 404


def test_another_tenants_key_does_not_see_the_first_tenants_exports(acme, service):
    acme_rows = acme.row_ids()
    assert acme_rows
    acme.sign_out()
    acme.sign_in(service.keys["globex"])
    acme.wait(lambda: "No exports match" in acme.text("export-rows"), "an empty list")
    assert acme.row_ids() == []
    acme.sign_out()
    acme.sign_in(service.keys["acme"])
    acme.wait(lambda: acme.row_ids() == acme_rows, "acme's rows again")


def test_the_page_runs_only_its_own_files_and_no_page_can_frame_it(acme, service):
    with urllib.request.urlopen(service.url + "/") as page:
        headers = page.headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    # everything the tests above did on the page, it did under that policy, which blocked nothing
    assert acme.policy_violations() == []
    # and the browser enforces it: a script put into the page from outside does not run
    acme.script("const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
                " document.head.appendChild(s)")
    assert acme.script("return window.__ran") is None
    assert any(v.startswith("script-src") for v in acme.policy_violations())

    with _page_framing(service.url + "/") as framing_url:  # another origin, on loopback too
        acme.driver.get(framing_url)
        acme.wait(lambda: acme.script("return document.readyState") == "complete", "the framing page")
        acme.driver.switch_to.frame("framed")
        try:
            framed = acme.script("return [document.URL, !!document.getElementById('sign-in-form')]")
        finally:
            acme.driver.switch_to.default_content()
            acme.open()
            acme.sign_in(service.keys["acme"])
    assert framed == ["chrome-error://chromewebdata/", False]


@contextlib.contextmanager
def _page_framing(url: str):
    """A page on another loopback origin that frames ``url``; its address."""
    page = f"<!doctype html><iframe id='framed' src='{url}'></iframe>".encode()

    class Framing(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Framing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
