"""Debian's chromium, headless, driven by Selenium with an explicit chromedriver path.

Selenium Manager (which would go online for a driver) is never consulted, and no host name
outside loopback resolves inside the browser.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

INSTALL_HINT = "apt-get install chromium chromium-driver (tools/setup.sh test does it as root)"
T = TypeVar("T")


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) as Debian installs them, or None."""
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if driver is None and Path("/usr/lib/chromium/chromedriver").exists():
        driver = "/usr/lib/chromium/chromedriver"
    return (chrome, driver) if chrome and driver else None


def require_browser() -> tuple[str, str]:
    """The browser, or skip (not root: cannot install) / fail (root: CI must have it)."""
    found = find_browser()
    if found is None:
        if os.geteuid() != 0:
            pytest.skip(f"no chromium/chromedriver and not root to install them: {INSTALL_HINT}")
        pytest.fail(f"chromium/chromedriver missing although running as root: {INSTALL_HINT}")
    return found


@contextmanager
def chromium(found: tuple[str, str], width: int = 1280, height: int = 900) -> Iterator[Any]:
    chrome, driver = found
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where chromium refuses its sandbox
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


def wait(drv: Any, what: str, cond: Callable[[Any], T], timeout: float = 30) -> T:
    result: T = WebDriverWait(drv, timeout, poll_frequency=0.1).until(
        cond, message=f"timed out waiting for {what}"
    )
    return result


def requested_urls(drv: Any) -> list[str]:
    """Every URL the browser requested since the last call (the performance log drains)."""
    return [
        json.loads(entry["message"])["message"]["params"]["request"]["url"]
        for entry in drv.get_log("performance")
        if '"Network.requestWillBeSent"' in entry["message"]
    ]


def foreign(urls: list[str], origin: str) -> list[str]:
    """The URLs that left `origin` (data: and blob: stay in the page)."""
    host = urlsplit(origin).netloc
    return [
        u for u in urls if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != host
    ]
