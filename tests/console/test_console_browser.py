"""The console in a real browser against a real `edge-face serve` with a real camera.

Debian's chromium (Selenium) does what a person does: a wrong key is refused, the right key
signs in, two people are enrolled from real photos (one with two photos at once), both are
listed, another photo of one of them is recognised on the try-it page with the right name,
that person is renamed, the other deleted, and when the renamed person walks past the
camera the live page shows the event under the new name. The API (with the api-key, as any
client) confirms what the console did; the page loads nothing from any other host.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.support.browser import chromium, foreign, requested_urls, require_browser, wait
from tests.support.console_box import ConsoleBox, console_box

KEY = "console-browser-key-0123456789"
OTHER_KEY = "console-other-instance-key-0123"  # instance "back": no camera of its own
GUIDO = "guido_van_rossum"
KATY = "katy_perry"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[ConsoleBox]:
    tmp = tmp_path_factory.mktemp("console")
    with console_box(tmp, model_dir, KEY, other_keys={OTHER_KEY: "back"}) as b:
        yield b


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(require_browser()) as drv:
        yield drv


def css(drv: Any, selector: str) -> Any:
    return drv.find_element(By.CSS_SELECTOR, selector)


def ready(drv: Any) -> None:
    wait(
        drv, "the page to be ready", lambda d: d.find_elements(By.CSS_SELECTOR, "body[data-ready]")
    )


def rows(drv: Any) -> dict[str, str]:
    """Person name -> photo count, as the people table shows them (read in one go: the
    table is re-rendered after every change)."""
    return dict(
        drv.execute_script(
            "return [...document.querySelectorAll('#people tr.person')]"
            ".map(r => [r.dataset.key, r.querySelector('.count').textContent])"
        )
    )


def edit(drv: Any, person: str, action: str, value: str) -> None:
    """Open a person's editor (rename / move / meta), type `value`, save."""
    css(drv, f'tr.person[data-key="{person}"] .{action}').click()
    field = css(drv, "tr.editor .edit-value")
    field.clear()
    field.send_keys(value)
    css(drv, "tr.editor .save").click()
    wait(drv, "the editor to close", lambda d: not d.find_elements(By.CSS_SELECTOR, "tr.editor"))


def keys_in_store(box: ConsoleBox) -> list[str]:
    code, page = box.call("GET", "/api/v1/entities/faces?limit=1000")
    assert code == 200, page
    return sorted(e["key"] for e in page["entities"])


def enrol(drv: Any, name: str, photos: list[Path]) -> None:
    key = css(drv, "#enrol-key")
    key.clear()
    key.send_keys(name)
    css(drv, "#enrol-files").send_keys("\n".join(str(p) for p in photos))
    css(drv, "#enrol-btn").click()
    wait(
        drv,
        f"{name} enrolled",
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#enrol-results .ok")) == len(photos),
        timeout=120,
    )


def shot(drv: Any, name: str) -> None:
    """CONSOLE_SCREENSHOTS=dir keeps a picture of each step to look at."""
    where = os.environ.get("CONSOLE_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        drv.save_screenshot(str(Path(where) / f"{name}.png"))


def test_a_person_runs_the_box_from_the_console(
    box: ConsoleBox, browser: Any, testdata: Path
) -> None:
    people = testdata / "faces_by_identity"
    drv = browser

    # a wrong key is refused, with a sentence, and no session is made
    drv.get(box.origin + "/console")
    wait(drv, "the sign-in page", lambda d: d.current_url.endswith("/console/signin"))
    css(drv, "#api-key").send_keys("not-the-key")
    css(drv, "#signin-btn").click()
    err = wait(
        drv, "the refusal", lambda d: d.find_elements(By.CSS_SELECTOR, "#signin-error .error")
    )
    assert err[0].get_attribute("data-code") == "401"
    assert "not signed in, or the key is not valid" in err[0].text
    assert drv.get_cookies() == []
    drv.get(box.origin + "/console/people")
    assert drv.current_url.endswith("/console/signin")

    # the right key signs in; the cookie is out of the page's reach
    css(drv, "#api-key").send_keys(KEY)
    css(drv, "#signin-btn").click()
    wait(drv, "the people page", lambda d: d.current_url.endswith("/console/people"))
    ready(drv)
    cookie = drv.get_cookies()[0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != KEY
    assert drv.execute_script("return document.cookie") == ""
    assert "instance front" in css(drv, "#who").text
    assert css(drv, "#people-empty").is_displayed()

    # enrol two people from real photos (two photos of the first one at once)
    enrol(drv, "guido", [people / GUIDO / "1.jpg", people / GUIDO / "3.jpg"])
    wait(drv, "guido listed", lambda d: rows(d).get("guido") == "2")
    enrol(drv, "katy", [people / KATY / "1.jpg"])
    wait(drv, "both listed", lambda d: rows(d) == {"guido": "2", "katy": "1"})
    assert keys_in_store(box) == ["guido", "guido", "katy"]
    shot(drv, "people")

    # a photo without a face: the contract code, said as a sentence, and nothing stored
    css(drv, "#enrol-key").send_keys("nobody")
    css(drv, "#enrol-files").send_keys(str(testdata / "awkward" / "no_face_landscape_view.jpg"))
    css(drv, "#enrol-btn").click()
    refused = wait(
        drv, "the refusal", lambda d: d.find_elements(By.CSS_SELECTOR, "#enrol-results .error"), 60
    )[0]
    assert refused.get_attribute("data-code") == "223"
    assert "No face was found in the photo." in refused.text
    assert keys_in_store(box) == ["guido", "guido", "katy"]

    # another photo of guido on the try-it page: his name, his box and landmarks drawn
    css(drv, "nav a[data-nav=try]").click()
    ready(drv)
    css(drv, "#try-file").send_keys(str(people / GUIDO / "2.jpg"))
    verdict = wait(
        drv,
        "the search answer",
        lambda d: d.find_elements(By.CSS_SELECTOR, "#try-verdict .big"),
        timeout=120,
    )[0]
    assert verdict.get_attribute("data-key") == "guido" and verdict.text == "guido"
    wait(drv, "the face cards", lambda d: d.find_elements(By.CSS_SELECTOR, "#try-faces .face"))
    assert "106 points" in css(drv, "#try-faces .face").text
    wait(drv, "liveness", lambda d: d.find_elements(By.CSS_SELECTOR, "#try-live-verdict"), 60)
    width = drv.execute_script("return document.getElementById('try-canvas').width")
    assert width > 640  # the photo's own size: it was drawn, not the placeholder
    shot(drv, "try")

    # rename guido, delete katy
    css(drv, "nav a[data-nav=people]").click()
    ready(drv)
    wait(drv, "the table", lambda d: rows(d) == {"guido": "2", "katy": "1"})
    edit(drv, "guido", "rename", "Guido van Rossum")
    wait(drv, "the new name", lambda d: rows(d) == {"Guido van Rossum": "2", "katy": "1"})
    edit(drv, "Guido van Rossum", "move", "staff")
    edit(drv, "Guido van Rossum", "meta", "badge=42\nvisitor=false")
    wait(drv, "the metadata", lambda d: "badge=42" in css(d, "tr.person").text)
    code, page = box.call("GET", "/api/v1/entities/faces?key=Guido%20van%20Rossum")
    assert code == 200 and page["count"] == 2, page
    for entity in page["entities"]:
        assert entity["collection"] == "staff"
        assert entity["metadata"] == [
            {"name": "badge", "type": "integer", "value": 42},
            {"name": "visitor", "type": "boolean", "value": False},
        ]
    delete = css(drv, 'tr.person[data-key="katy"] .delete-person')
    delete.click()
    assert "Confirm" in delete.text  # one click only arms it
    delete.click()
    wait(drv, "katy gone", lambda d: rows(d) == {"Guido van Rossum": "2"})
    assert keys_in_store(box) == ["Guido van Rossum", "Guido van Rossum"]

    # the live page: the camera's health, then an event when guido walks past
    css(drv, "nav a[data-nav=live]").click()
    ready(drv)
    wait(drv, "the stream", lambda d: css(d, "#stream-state").text == "connected")
    wait(
        drv,
        "the camera card",
        lambda d: d.find_elements(By.CSS_SELECTOR, ".camera[data-camera=door]"),
    )
    box.show(people / GUIDO / "2.jpg")
    event = wait(
        drv,
        "a live event",
        lambda d: d.find_elements(By.CSS_SELECTOR, 'tr.event[data-key="Guido van Rossum"]'),
        timeout=120,
    )[0]
    assert event.get_attribute("data-decision") == "known"
    assert "door" in event.text and " ms" in event.text
    shot(drv, "live")

    # enrol the person in front of the camera (guido is still there)
    css(drv, "nav a[data-nav=people]").click()
    ready(drv)
    css(drv, "#enrol-key").send_keys("at the door")
    css(drv, "#enrol-camera-btn").click()
    wait(drv, "the camera enrolment", lambda d: rows(d).get("at the door") == "1", 60)
    box.show(None)
    assert keys_in_store(box) == ["Guido van Rossum", "Guido van Rossum", "at the door"]

    # one enrolment of a person goes, the person stays
    css(drv, 'tr.person[data-key="Guido van Rossum"] .toggle').click()
    first = wait(drv, "the enrolments", lambda d: d.find_elements(By.CSS_SELECTOR, "tr.enrolment"))
    uuid = first[0].get_attribute("data-uuid")
    first[0].find_element(By.CSS_SELECTOR, ".delete-one").click()
    css(drv, f'tr.enrolment[data-uuid="{uuid}"] .delete-one').click()  # confirm
    wait(drv, "one photo left", lambda d: rows(d).get("Guido van Rossum") == "1")
    assert box.call("GET", f"/api/v1/entities/faces/{uuid}")[0] == 404

    # health: readiness and the models with their runtime
    css(drv, "nav a[data-nav=health]").click()
    ready(drv)
    wait(
        drv, "the models", lambda d: d.find_elements(By.CSS_SELECTOR, "#health-models tr.component")
    )
    assert "Ready" in css(drv, "#health-ready").text
    assert "Recognition events" in css(drv, "#health-metrics").text

    # everything came from the box, and its policy blocked nothing of its own
    urls = requested_urls(drv)
    assert any(u.endswith("/api/v1/entities/faces/search") for u in urls) or urls
    assert foreign(urls, box.origin) == []
    log = [e["message"] for e in drv.get_log("browser")]
    assert not [m for m in log if "Content Security Policy" in m], log

    # sign out: the pages are closed again
    css(drv, "#signout").click()
    wait(drv, "the sign-in page", lambda d: d.current_url.endswith("/console/signin"))
    drv.get(box.origin + "/console/live")
    assert drv.current_url.endswith("/console/signin")


def test_the_key_and_photos_never_reach_the_server_log(box: ConsoleBox) -> None:
    text = box.log.read_text()
    assert KEY not in text
    assert "base64" not in text and "/9j/" not in text  # no JPEG data
    if os.environ.get("CONSOLE_KEEP_LOG"):
        shutil.copy(box.log, os.environ["CONSOLE_KEEP_LOG"])


def test_every_page_fits_a_phone(box: ConsoleBox, browser: Any) -> None:
    """At 390 CSS px nothing makes the page scroll sideways (wide tables scroll in place)."""
    drv = browser
    drv.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
    )
    try:
        drv.get(box.origin + "/console/signin")
        ready(drv)
        css(drv, "#api-key").send_keys(KEY)
        css(drv, "#signin-btn").click()
        wait(drv, "the people page", lambda d: d.current_url.endswith("/console/people"))
        for page in ("people", "try", "live", "health"):
            drv.get(box.origin + f"/console/{page}")
            ready(drv)
            wide = drv.execute_script("return document.documentElement.scrollWidth")
            assert wide <= 390, (page, wide)
    finally:
        drv.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_another_instance_sees_no_camera_of_this_one(box: ConsoleBox) -> None:
    """Signed in with the key of instance "back", the front door camera does not exist."""
    conn = http.client.HTTPConnection("127.0.0.1", box.port, timeout=60)

    def call(method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any, Any]:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(
            method, path, body=data, headers={"content-type": "application/json", **headers}
        )
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None, resp

    try:
        status, answer, resp = call("POST", "/console/session", {"apiKey": OTHER_KEY})
        assert status == 200 and answer["instance"] == "back"
        cookie = resp.getheader("set-cookie").split(";")[0]
        session = {"cookie": cookie, "x-csrf-token": answer["csrf"]}
        status, info, _ = call("GET", "/console/session", **session)
        assert status == 200 and info["cameras"] == []
        status, cams, _ = call("GET", "/console/cameras", **session)
        assert status == 200 and cams == {"cameras": []}
        status, err, _ = call("POST", "/console/cameras/door/enroll", {"key": "x"}, **session)
        assert status == 400 and err["code"] == 113
        status, listing, _ = call("GET", "/api/v1/entities/faces", **session)
        assert status == 200 and listing["total"] == 0  # front's people are not back's
    finally:
        conn.close()
