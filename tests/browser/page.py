"""The monitor page (``/monitor``) as a test drives it in the browser: what it shows is read
with one script per look (its rows are redrawn at every poll, so element handles go stale),
what an operator does is done by clicking."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By

T = TypeVar("T")

_ROWS = """return [...document.querySelectorAll('[data-testid="job-row"]')].map(r => ({
  id: r.dataset.jobId, state: r.dataset.state, stage: r.dataset.stage}));"""
_BARS = """return [...document.querySelectorAll(
  '[data-testid="gantt-row"][data-job-id="' + arguments[0] + '"] [data-testid="gantt-bar"]')]
  .map(b => ({stage: b.dataset.stage, state: b.dataset.state}));"""
_VISIBLE = """const e = document.getElementById(arguments[0]);
  return !!e && (e.open ?? !e.hidden);"""
_COUNT = "return document.querySelectorAll(arguments[0]).length;"
_STAGES = """return [...document.querySelectorAll('[data-testid="stage-row"]')].map(r => ({
  stage: r.dataset.stage, state: r.dataset.state, text: r.innerText}));"""


@dataclass
class MonitorPage:
    driver: webdriver.Chrome
    base_url: str
    #: Called on a timeout, for the failure's message (the stack's logs).
    explain: Callable[[], str] = lambda: ""

    def open(self, token: str) -> None:
        """Load the page and give it the token when it asks (its first API call gets a 401)."""
        self.driver.get(f"{self.base_url}/monitor")
        self.wait(lambda: self.visible("token-dialog"), 15, "the page asks for the token")
        self.driver.find_element(By.ID, "token-input").send_keys(token)
        self.driver.find_element(By.ID, "token-submit").click()
        self.wait(lambda: not self.visible("token-dialog"), 5, "the token dialog closes")

    # ---- looking ----------------------------------------------------------------------------
    def visible(self, element_id: str) -> bool:
        return bool(self.driver.execute_script(_VISIBLE, element_id))

    def text(self, element_id: str) -> str:
        script = "const e = document.getElementById(arguments[0]); return e ? e.innerText : '';"
        return str(self.driver.execute_script(script, element_id))

    def attribute(self, element_id: str, name: str) -> str | None:
        return self.driver.find_element(By.ID, element_id).get_attribute(name)

    def count(self, selector: str) -> int:
        return int(self.driver.execute_script(_COUNT, selector))

    def jobs(self) -> list[dict[str, str]]:
        return list(self.driver.execute_script(_ROWS))

    def job(self, job_id: str) -> dict[str, str] | None:
        return next((j for j in self.jobs() if j["id"] == job_id), None)

    def state_of(self, job_id: str) -> str | None:
        job = self.job(job_id)
        return job["state"] if job else None

    def gantt_bars(self, job_id: str) -> list[dict[str, str]]:
        return list(self.driver.execute_script(_BARS, job_id))

    def stage_rows(self) -> list[dict[str, str]]:
        return list(self.driver.execute_script(_STAGES))

    def uncaught_errors(self) -> list[str]:
        """The page's own script errors (failed requests, e.g. the 401 before the token, are
        answers the page handles, not errors of the page)."""
        return [
            e["message"]
            for e in self.driver.get_log("browser")
            if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
        ]

    # ---- doing ------------------------------------------------------------------------------
    def select(self, job_id: str) -> None:
        """Click the job's row; its detail shows."""
        row = f'[data-testid="job-row"][data-job-id="{job_id}"]'
        self.retry_stale(lambda: self.driver.find_element(By.CSS_SELECTOR, row).click())
        self.wait(lambda: self.text("detail-id") == job_id, 10, f"the detail of {job_id}")

    def act(self, action: str) -> tuple[str, str]:
        """Click the selected job's ``action`` button, confirm; (outcome, the text shown)."""
        button = self.driver.find_element(By.CSS_SELECTOR, f'[data-testid="btn-{action}"]')
        self.wait(button.is_enabled, 10, f"the {action} button is enabled")
        button.click()
        self.wait(lambda: self.visible("confirm-dialog"), 5, "the confirmation")
        assert self.text("confirm-text")
        self.driver.find_element(By.ID, "confirm-yes").click()

        def outcome() -> str | None:
            value = self.attribute("action-result", "data-outcome")
            return value if value in ("ok", "error") else None

        got = self.wait(outcome, 15, f"the result of {action}")
        return got, self.text("action-result")

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        width = self.driver.get_window_size()["width"]
        self.driver.set_window_size(width, max(int(height) + 20, 600))
        self.driver.save_screenshot(str(path))
        return path

    # ---- waiting ----------------------------------------------------------------------------
    def wait(self, check: Callable[[], T], seconds: float, what: str) -> T:
        """``check()``'s first true value within ``seconds`` (a failure names ``what``)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                value = check()
            except (StaleElementReferenceException, WebDriverException):
                value = None  # redrawn while looked at: look again
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen within {seconds} s: {what}\n{self.explain()}")
            time.sleep(0.1)

    @staticmethod
    def retry_stale(action: Callable[[], Any], tries: int = 20) -> Any:
        for _ in range(tries - 1):
            try:
                return action()
            except StaleElementReferenceException:
                time.sleep(0.05)
        return action()
