"""Fixtures of the real-browser tests: headless Debian Chromium driven by selenium through
Debian's chromedriver (``ops/ensure-browser`` installs both when missing and it may: nothing is
downloaded by a driver manager at test time). Skipped, saying why, only where the browser
cannot be had."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[2]
#: Where a browser test leaves what it saw (screenshots): git-ignored, kept after the run.
ARTIFACTS = ROOT / "var" / "test-artifacts"
WINDOW = (1400, 1800)


@pytest.fixture(scope="session")
def browser_paths() -> tuple[str, str]:
    """Chromium's and chromedriver's paths (installed by ``ops/ensure-browser`` if need be)."""
    try:
        answer = subprocess.run(
            [str(ROOT / "ops" / "ensure-browser")], capture_output=True, text=True, timeout=900
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"no headless browser: ops/ensure-browser did not finish ({error})")
    if answer.returncode != 0:
        pytest.skip(f"no headless browser on this machine: {answer.stderr.strip()}")
    browser, driver = answer.stdout.split()[-2:]
    return browser, driver


@pytest.fixture
def browser(browser_paths: tuple[str, str], tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium of the test's own (an empty profile; no background connections,
    which this machine's closed network would refuse)."""
    binary, driver = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container: no user namespace for the sandbox
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=driver, log_output=str(tmp_path / "chromedriver.log"))
    chrome = webdriver.Chrome(service=service, options=options)
    chrome.set_page_load_timeout(30)
    try:
        yield chrome
    finally:
        chrome.quit()
