"""/docs in a real headless browser (Debian's chromium through Selenium): a person can try
a request. The real service runs on loopback with real models; a real photo is enrolled
through the API, then the page is used like a person would: enter the key, pick a different
photo of the same person with the file picker (base64-encoded by the browser), send a
search and read the answer on the page. The page must load nothing from any other host.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from tests.support.browser import T, chromium, foreign, requested_urls, require_browser, wait
from tests.support.faces import FacesServer
from tests.support.images import img
from tests.support.servers import KEY_A

SEARCH_CARD = "#op-postApiV1EntitiesFacesSearch"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium(require_browser(), width=1200, height=1900) as drv:
        yield drv


def _wait(drv: webdriver.Chrome, what: str, cond: Callable[[Any], T], timeout: float = 30) -> T:
    return wait(drv, what, cond, timeout)


def _status(drv: webdriver.Chrome, card: WebElement) -> str:
    """The HTTP status the page shows for `card` once its answer arrived."""
    status = card.find_element(By.CSS_SELECTOR, ".status")
    _wait(drv, "the answer", lambda _d: status.get_attribute("data-code"), timeout=60)
    return str(status.get_attribute("data-code"))


def _screenshot(drv: webdriver.Chrome, at: WebElement | None, path: Path) -> None:
    """A picture of the page (kept under tmp; EDGE_DOCS_SCREENSHOTS=dir copies it to look at)."""
    drv.execute_script("arguments[0] ? arguments[0].scrollIntoView() : scrollTo(0, 0)", at)
    drv.save_screenshot(str(path))
    assert path.stat().st_size > 10_000  # a blank page compresses to far less
    if os.environ.get("EDGE_DOCS_SCREENSHOTS"):
        shutil.copy(path, os.environ["EDGE_DOCS_SCREENSHOTS"])


def test_a_person_can_search_from_the_docs_page(
    srv: FacesServer, browser: webdriver.Chrome, testdata: Path, tmp_path: Path
) -> None:
    people = testdata / "faces_by_identity"
    enrolled = srv.create(img(people / "guido_van_rossum" / "1.jpg"), key="guido", collection="")
    assert enrolled.status == 201, enrolled.raw
    other = srv.create(img(people / "katy_perry" / "1.jpg"), key="katy")
    assert other.status == 201, other.raw
    probe = people / "guido_van_rossum" / "2.jpg"

    origin = f"http://127.0.0.1:{srv.port}"
    browser.get(origin + "/docs")
    _wait(browser, "the page", lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready]"))

    # every schema shown is resolved: no JSON-pointer leaks into the page
    text = browser.execute_script("return document.querySelector('main').textContent")
    assert "$ref" not in text and "#/components" not in text
    assert "only entities whose similarityScore is >= threshold" in text  # field words

    _screenshot(browser, None, tmp_path / "docs-top.png")
    card = browser.find_element(By.CSS_SELECTOR, SEARCH_CARD)
    card.find_element(By.TAG_NAME, "summary").click()
    textarea = card.find_element(By.TAG_NAME, "textarea")
    example = json.loads(textarea.get_attribute("value") or "")
    assert example["model"] == "EDGE_FACE_V1" and example["threshold"] == 0.9

    # without a key the service refuses, and the page shows it
    card.find_element(By.CSS_SELECTOR, "button.send").click()
    assert _status(browser, card) == "401"

    browser.find_element(By.ID, "api-key").send_keys(KEY_A)
    picker = card.find_element(By.CSS_SELECTOR, 'input[type=file][data-path="image.data"]')
    picker.send_keys(str(probe))
    want = base64.b64encode(probe.read_bytes()).decode("ascii")
    _wait(
        browser,
        "the picked photo in the body",
        lambda _d: json.loads(textarea.get_attribute("value") or "{}")["image"]["data"] == want,
    )
    card.find_element(By.CSS_SELECTOR, "button.send").click()
    assert _status(browser, card) == "200"
    answer = json.loads(card.find_element(By.CSS_SELECTOR, ".response").text)
    found = [(e["uuid"], e["key"]) for e in answer["entitiesFound"]]
    assert found == [(enrolled.json["uuid"], "guido")], answer  # not the other person
    assert answer["threshold"] == 0.9

    _screenshot(browser, card, tmp_path / "docs-search.png")

    # a path parameter: read the enrolled entity back by its uuid
    one = browser.find_element(By.CSS_SELECTOR, "#op-getApiV1EntitiesFacesUuid")
    one.find_element(By.TAG_NAME, "summary").click()
    one.find_element(By.CSS_SELECTOR, 'input[data-param="uuid"]').send_keys(enrolled.json["uuid"])
    one.find_element(By.CSS_SELECTOR, "button.send").click()
    assert _status(browser, one) == "200"
    assert json.loads(one.find_element(By.CSS_SELECTOR, ".response").text) == enrolled.json

    # nothing was requested from any host but the service
    urls = requested_urls(browser)
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert any(u.endswith("/api/v1/entities/faces/search") for u in urls), urls
    assert foreign([*urls, *resources], origin) == []
    # the page's own policy blocked nothing of its own (its script and style are pinned)
    console = [e["message"] for e in browser.get_log("browser")]
    assert not [m for m in console if "Content Security Policy" in m], console
