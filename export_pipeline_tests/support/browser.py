"""A real headless Chromium (Debian's ``chromium`` + ``chromedriver``) driving the Reports page
as a person would: typing, choosing files, clicking, accepting dialogs. Selenium Manager is
kept offline: the driver's path is given, so nothing is downloaded."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--window-size=1400,1000")


def chromium_available() -> bool:
    return all(os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER))


ROWS_SCRIPT = """
const table = document.getElementById("exports");
const headings = [...table.querySelectorAll("thead th")].map((th) => th.innerText.trim().toLowerCase());
return [...table.querySelectorAll("tbody tr[data-id]")].map((row) => {
  const cells = Object.fromEntries([...row.cells].map((cell, i) => [headings[i], cell]));
  const link = cells.download.querySelector("a"), bar = cells.status.querySelector("progress");
  return {
    id: row.dataset.id,
    name: cells.name.innerText,
    status: cells.status.innerText.trim(),
    created: cells.created.querySelector("time").dateTime,
    format: cells.format.innerText,
    rows: cells.rows.innerText,
    download: link ? link.href : null,
    downloadText: cells.download.innerText.trim(),
    errors: [...cells.error.querySelectorAll("li")].map((li) => li.innerText),
    progress: bar ? {max: bar.max, value: bar.hasAttribute("value") ? bar.value : null} : null,
  };
});
"""


# Runs before any of a page's own scripts, in every document the browser opens.
VIOLATIONS = """
window.__policyViolations = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.__policyViolations.push(e.effectiveDirective + " " + e.blockedURI));
"""


@dataclass
class Browser:
    driver: Any
    base_url: str
    downloads: Path

    @classmethod
    @contextmanager
    def start(cls, root: Path, base_url: str) -> Iterator[Browser]:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        downloads = root / "downloads"
        downloads.mkdir()
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in CHROME_ARGS:
            options.add_argument(argument)
        options.add_argument(f"--user-data-dir={root / 'profile'}")
        options.add_experimental_option("prefs", {
            "download.default_directory": str(downloads), "download.prompt_for_download": False})
        offline = os.environ.get("SE_OFFLINE")
        os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, should it run, downloads nothing
        try:
            driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        finally:
            if offline is None:
                del os.environ["SE_OFFLINE"]
            else:
                os.environ["SE_OFFLINE"] = offline
        try:
            driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                   {"behavior": "allow", "downloadPath": str(downloads)})
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": VIOLATIONS})
            yield cls(driver, base_url, downloads)
        finally:
            driver.quit()

    # -- looking ---------------------------------------------------------------------------

    def wait(self, condition: Callable[[], Any], what: str | Callable[[], str], timeout: float = 60) -> Any:
        """Poll ``condition`` until it holds; ``what`` names it (or says what is there) when it
        never does."""
        from selenium.common.exceptions import StaleElementReferenceException

        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except StaleElementReferenceException:  # the list re-rendered under us
                value = None
            if value:
                return value
            assert time.monotonic() < deadline, f"waited for {what() if callable(what) else what}"
            time.sleep(0.1)

    def policy_violations(self) -> list[str]:
        """What the page's Content-Security-Policy blocked since it loaded."""
        return self.script("return window.__policyViolations || []")

    def script(self, source: str, *args: Any) -> Any:
        return self.driver.execute_script(source, *args)

    def find(self, element_id: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return self.find(element_id).text

    def visible(self, element_id: str) -> bool:
        return self.find(element_id).is_displayed()

    def polling(self) -> str | None:
        return self.script("return document.body.dataset.polling || null")

    def row_ids(self) -> list[str]:
        return self.script("return [...document.querySelectorAll('#export-rows tr[data-id]')].map(r => r.dataset.id)")

    def rows(self) -> list[dict[str, Any]]:
        """What a person reads in each row, cell by cell under the table's headings, read in
        one step so a refresh of the list cannot change it half-way."""
        return self.script(ROWS_SCRIPT)

    def row(self, export_id: str) -> dict[str, Any] | None:
        return next((row for row in self.rows() if row["id"] == export_id), None)

    def row_element(self, export_id: str, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, f"#export-rows tr[data-id='{export_id}'] {selector}")

    def controls(self) -> list[dict[str, str]]:
        """Every visible control with the role and name the browser's accessibility tree gives it."""
        from selenium.webdriver.common.by import By

        return [{"tag": e.tag_name, "id": e.get_attribute("id") or "", "role": e.aria_role, "name": e.accessible_name}
                for e in self.driver.find_elements(By.CSS_SELECTOR, "input, select, button, a[href]")
                if e.is_displayed()]

    def problems(self) -> list[str]:
        from selenium.webdriver.common.by import By

        return [li.text for li in self.find("problems").find_elements(By.TAG_NAME, "li")]

    def watch(self, export_id: str, until: set[str], timeout: float) -> list[tuple[str, dict | None]]:
        """Watch the row, never reloading, until its status is one of ``until``: each distinct
        (status, progress bar) seen on the way."""
        seen: list[tuple[str, dict | None]] = []

        def done() -> bool:
            row = self.row(export_id) or {"status": "(no row)", "progress": None}
            state = (row["status"], row["progress"])
            if not seen or seen[-1] != state:
                seen.append(state)
            return row["status"] in until

        self.wait(done, f"export {export_id} to be {until}", timeout)
        return seen

    # -- doing -----------------------------------------------------------------------------

    def open(self) -> None:
        self.driver.get(self.base_url + "/")
        self.script("sessionStorage.clear()")
        self.driver.get(self.base_url + "/")

    def sign_in(self, key: str) -> None:
        field = self.find("key")
        field.clear()
        field.send_keys(key, "\n")  # Enter submits, as from a keyboard
        self.wait(lambda: self.visible("reports") or "Wrong key" in self.text("sign-in-message")
                  or "not accepted" in self.text("sign-in-message"), "the sign-in answer")

    def sign_out(self) -> None:
        self.find("sign-out").click()
        self.wait(lambda: self.visible("sign-in"), "the sign-in form")

    def upload(self, path: Path) -> None:
        self.find("request-file").send_keys(str(path))
        self.find("upload-form").find_element("css selector", "button[type=submit]").click()

    def create_saved(self, name: str, start: str, end: str) -> None:
        for element_id, value in (("saved-name", name), ("saved-start", start), ("saved-end", end)):
            field = self.find(element_id)
            field.clear()
            field.send_keys(value)
        self.find("saved-form").find_element("css selector", "button[type=submit]").click()

    def select_format(self, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.find("format-filter")).select_by_value(value)

    def set_dates(self, start: date | None, end: date | None) -> None:
        """Type the dates as a person does into the date inputs, then apply."""
        for element_id, value in (("created-from", start), ("created-until", end)):
            field = self.find(element_id)
            self.script("arguments[0].value = ''", field)
            if value is not None:
                # Chromium's date input takes the digits in the locale's order (en-US: month, day, year)
                field.send_keys(value.strftime("%m%d%Y"))
        self.find("filters").find_element("css selector", "button[type=submit]").click()

    def clear_filters(self) -> None:
        self.find("filters").find_element("css selector", "button[type=reset]").click()

    def delete(self, export_id: str, confirm: bool) -> None:
        self.row_element(export_id, "button").send_keys(" ")  # a real button: Space presses it
        alert = self.wait(lambda: self._alert(), "the confirmation")
        alert.accept() if confirm else alert.dismiss()

    def _alert(self):
        from selenium.common.exceptions import NoAlertPresentException

        try:
            alert = self.driver.switch_to.alert
            alert.text  # noqa: B018 - raises when there is none
            return alert
        except NoAlertPresentException:
            return None

    def download(self, export_id: str) -> bytes:
        """Click the row's download link; the bytes of the file the browser saved."""
        for old in self.downloads.iterdir():
            old.unlink() if old.is_file() else shutil.rmtree(old)
        self.row_element(export_id, "a[download]").click()

        def saved() -> Path | None:
            files = [p for p in self.downloads.iterdir() if not p.name.endswith((".crdownload", ".tmp"))]
            partial = [p for p in self.downloads.iterdir() if p.name.endswith(".crdownload")]
            return files[0] if len(files) == 1 and not partial else None

        return self.wait(saved, "the download").read_bytes()
