"""Screenshots of the web console for the README, and its measured figures.

    python tools/console_screenshots.py                 # PNGs into docs/console/, then figures
    python tools/console_screenshots.py --no-figures    # screenshots only
    python tools/console_screenshots.py --no-shots      # figures only

Starts a real `edge-face serve` (models from --models or the default model dir) with one
camera (an MJPEG stream on loopback), signs in with headless chromium, enrols people from
the shared test photos and takes each page at 1280x800 and the people page on a phone
(390 px). The PNGs are written with a 256-colour palette so each stays small.

Figures, measured on loopback with the same server:
- page weight: bytes transferred for the page and the REST calls it makes while loading;
- time to interactive: navigation start until the page has rendered its data (median of 5);
- CPU of the live page: the server's CPU while a person keeps walking past the camera,
  without and then with the live page open (the difference is what the page costs).
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil
from selenium.webdriver.common.by import By

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.config import load_settings  # noqa: E402
from tests.support.browser import chromium, find_browser, wait  # noqa: E402
from tests.support.console_box import ConsoleBox, console_box  # noqa: E402
from tests.support.paths import TESTDATA  # noqa: E402

KEY = "console-screenshot-key-0123456789"
PEOPLE = (
    ("Guido van Rossum", "guido_van_rossum", ("1.jpg", "3.jpg"), "engineering"),
    ("Katy Perry", "katy_perry", ("1.jpg",), "visitors"),
    ("Matt Damon", "matt_damon", ("1.jpg", "3.jpg"), "visitors"),
)
PROBE = ("guido_van_rossum", "2.jpg")


# Small PNGs ------------------------------------------------------------------------------------
def palette_png(bgr: np.ndarray, path: Path, colours: int = 256) -> int:
    """Write `bgr` as an 8-bit palette PNG: the most used colours (5 bits per channel), every
    other pixel mapped to its nearest one. UI pixels are flat colours, so little is lost."""
    rgb = bgr[:, :, ::-1].astype(np.int32) >> 3
    codes = (rgb[:, :, 0] << 10) | (rgb[:, :, 1] << 5) | rgb[:, :, 2]
    uniq, inverse, counts = np.unique(codes.ravel(), return_inverse=True, return_counts=True)
    cand = np.stack([(uniq >> 10) & 31, (uniq >> 5) & 31, uniq & 31], axis=1)
    flat = np.argsort(-counts)[: colours // 4]  # the UI's flat colours, exactly
    rest = np.setdiff1d(np.arange(len(uniq)), flat)
    pal = cand[flat]
    if len(rest) > colours - len(flat):  # photos: k-means over the other colours
        weights = counts[rest].astype(np.float64)
        rng = np.random.default_rng(0)
        sample = cand[rng.choice(rest, size=min(20000, len(rest)), p=weights / weights.sum())]
        crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 0.5)
        _c, _l, centres = cv2.kmeans(
            sample.astype(np.float32), colours - len(flat), None, crit, 1, cv2.KMEANS_PP_CENTERS
        )
        pal = np.concatenate([pal, np.clip(np.rint(centres), 0, 31).astype(np.int64)])
    else:
        pal = np.concatenate([pal, cand[rest]])
    nearest = np.empty(len(uniq), np.uint8)
    for i in range(0, len(uniq), 4096):  # nearest palette entry of each distinct colour
        d = ((cand[i : i + 4096, None, :] - pal[None, :, :]) ** 2).sum(axis=2)
        nearest[i : i + 4096] = d.argmin(axis=1)
    index = nearest[inverse].reshape(codes.shape)
    h, w = codes.shape[0], codes.shape[1]
    raw = b"".join(b"\x00" + index[y].tobytes() for y in range(h))
    pal8 = ((pal << 3) | (pal >> 2)).astype(np.uint8)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
        + chunk(b"PLTE", pal8.tobytes())
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    path.write_bytes(png)
    return len(png)


def viewport(drv: Any, width: int, height: int, phone: bool = False) -> None:
    """Exactly this CSS viewport (a window size would include the browser's frame)."""
    drv.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": phone},
    )


def save(drv: Any, out: Path, name: str, width: int = 1280, phone: bool = False) -> None:
    """The whole page (up to 1500 px tall) at `width`, as a palette PNG under ~80 KB."""
    viewport(drv, width, 800, phone)
    tall = drv.execute_script("return document.documentElement.scrollHeight")
    viewport(drv, width, min(max(int(tall), 600), 1500), phone)
    time.sleep(0.3)  # layout after the resize
    shot = cv2.imdecode(np.frombuffer(drv.get_screenshot_as_png(), np.uint8), cv2.IMREAD_COLOR)
    if shot is None:
        raise RuntimeError("chromium returned a screenshot that does not decode")
    for colours in (256, 128, 64, 32):
        size = palette_png(shot, out / f"{name}.png", colours)
        if size <= 80 * 1024:
            break
    print(f"  {out / f'{name}.png'}: {shot.shape[1]}x{shot.shape[0]}, {size / 1024:.0f} KB")


# Driving the console ---------------------------------------------------------------------------
def ready(drv: Any) -> None:
    wait(drv, "the page", lambda d: d.find_elements(By.CSS_SELECTOR, "body[data-ready]"), 60)


def sign_in(drv: Any, box: ConsoleBox) -> None:
    drv.get(box.origin + "/console/signin")
    ready(drv)
    drv.find_element(By.ID, "api-key").send_keys(KEY)
    drv.find_element(By.ID, "signin-btn").click()
    wait(drv, "signed in", lambda d: d.current_url.endswith("/console/people"))
    ready(drv)


def enrol_people(drv: Any, photos: Path) -> None:
    for name, folder, files, collection in PEOPLE:
        key = drv.find_element(By.ID, "enrol-key")
        key.clear()
        key.send_keys(name)
        col = drv.find_element(By.ID, "enrol-collection")
        col.clear()
        col.send_keys(collection)
        paths = [str(photos / folder / f) for f in files]
        drv.find_element(By.ID, "enrol-files").send_keys("\n".join(paths))
        drv.find_element(By.ID, "enrol-btn").click()
        wait(drv, f"{name} enrolled", enrolled(len(paths)), 120)


def enrolled(n: int) -> Any:
    return lambda d: len(d.find_elements(By.CSS_SELECTOR, "#enrol-results .ok")) == n


def try_photo(drv: Any, box: ConsoleBox, photo: Path) -> None:
    drv.get(box.origin + "/console/try")
    ready(drv)
    drv.find_element(By.ID, "try-file").send_keys(str(photo))
    wait(drv, "liveness", lambda d: d.find_elements(By.ID, "try-live-verdict"), 120)


def screenshots(box: ConsoleBox, browser: tuple[str, str], out: Path, photos: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with chromium(browser, 1280, 800) as drv:
        drv.get(box.origin + "/console/signin")
        ready(drv)
        save(drv, out, "signin")
        sign_in(drv, box)
        enrol_people(drv, photos)
        drv.get(box.origin + "/console/people")
        ready(drv)
        wait(drv, "the list", lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.person")) == 3)
        save(drv, out, "people")
        try_photo(drv, box, photos / PROBE[0] / PROBE[1])
        save(drv, out, "try")
        drv.get(box.origin + "/console/live")
        ready(drv)
        box.show(photos / PROBE[0] / PROBE[1])
        wait(drv, "an event", lambda d: d.find_elements(By.CSS_SELECTOR, "tr.event"), 120)
        time.sleep(2.5)  # the camera card's next refresh shows the analysed frame rate
        box.show(None)
        save(drv, out, "live")
        drv.get(box.origin + "/console/health")
        ready(drv)
        save(drv, out, "health")
    with chromium(browser, 390, 844) as phone:
        sign_in(phone, box)
        wait(phone, "the list", lambda d: d.find_elements(By.CSS_SELECTOR, "tr.person"))
        save(phone, out, "people-phone", 390, phone=True)


# Figures ---------------------------------------------------------------------------------------
WEIGHT_JS = """
const nav = performance.getEntriesByType('navigation')[0];
const res = performance.getEntriesByType('resource');
return [nav.transferSize, nav.decodedBodySize,
        res.reduce((n, e) => n + e.transferSize, 0), res.length];
"""


def page_figures(drv: Any, box: ConsoleBox, page: str, photo: Path | None) -> dict[str, float]:
    ttis, weights = [], []
    for _ in range(5):
        drv.get(box.origin + f"/console/{page}")
        ready(drv)
        ttis.append(float(drv.find_element(By.TAG_NAME, "body").get_attribute("data-ready-ms")))
        doc, decoded, api, calls = drv.execute_script(WEIGHT_JS)
        weights.append((doc, decoded, api, calls))
    doc, decoded, api, calls = weights[-1]
    out = {"tti_ms": statistics.median(ttis), "html_kb": doc / 1024, "html_raw_kb": decoded / 1024}
    out["load_kb"] = (doc + api) / 1024
    out["calls"] = calls
    if photo is not None:  # one try: the answers, and the photo sent up three times
        before = drv.execute_script(WEIGHT_JS)[2]
        drv.find_element(By.ID, "try-file").send_keys(str(photo))
        wait(drv, "liveness", lambda d: d.find_elements(By.ID, "try-live-verdict"), 120)
        out["try_answers_kb"] = (drv.execute_script(WEIGHT_JS)[2] - before) / 1024
        out["try_upload_kb"] = 3 * (4 * photo.stat().st_size / 3) / 1024  # base64 in JSON
    return out


def walker(box: ConsoleBox, photo: Path, stop: threading.Event) -> None:
    """Someone walks past the camera every 3 s (a new track, so a new event, each time)."""
    while not stop.is_set():
        box.show(photo)
        stop.wait(1.5)
        box.show(None)
        stop.wait(1.5)


def server_cpu(box: ConsoleBox, seconds: float) -> float:
    """The server process's CPU over `seconds`, in % of one core."""
    proc = psutil.Process(box.proc.pid)
    t0, c0 = time.monotonic(), float(sum(proc.cpu_times()[:2]))
    time.sleep(seconds)
    t1, c1 = time.monotonic(), float(sum(proc.cpu_times()[:2]))
    return 100.0 * (c1 - c0) / (t1 - t0)


def figures(
    box: ConsoleBox, browser: tuple[str, str], photos: Path, seconds: float, rounds: int
) -> None:
    probe = photos / PROBE[0] / PROBE[1]
    with chromium(browser, 1280, 800) as drv:
        sign_in(drv, box)
        people = page_figures(drv, box, "people", None)
        trying = page_figures(drv, box, "try", probe)
        print("\nPage weight and time to interactive (loopback, headless chromium, median of 5):")
        for name, f in (("people", people), ("try it", trying)):
            print(
                f"  {name:7} HTML {f['html_kb']:.1f} KB transferred ({f['html_raw_kb']:.1f} KB"
                f" unpacked), with its {f['calls']:.0f} API calls on load {f['load_kb']:.1f} KB;"
                f" interactive after {f['tti_ms']:.0f} ms"
            )
        print(
            f"  one try (a {probe.stat().st_size / 1024:.0f} KB photo): answers"
            f" {trying['try_answers_kb']:.0f} KB down; the photo goes up 3 times as base64"
            f" (detect, search, liveness: {trying['try_upload_kb']:.0f} KB)"
        )

        stop = threading.Event()
        walk = threading.Thread(target=walker, args=(box, probe, stop), daemon=True)
        walk.start()
        closed: list[float] = []
        opened: list[float] = []
        try:
            for _ in range(rounds):  # alternated, so a drift of the machine hits both alike
                drv.get("about:blank")
                time.sleep(2)
                closed.append(server_cpu(box, seconds))
                drv.get(box.origin + "/console/live")
                ready(drv)
                time.sleep(2)
                opened.append(server_cpu(box, seconds))
            events = len(drv.find_elements(By.CSS_SELECTOR, "tr.event"))
        finally:
            stop.set()
            walk.join()
            box.show(None)
        mean_c, mean_o = statistics.mean(closed), statistics.mean(opened)
        noise = max(closed) - min(closed)
        print(
            f"\nServer CPU, one camera, a person passing every 3 s ({rounds} x {seconds:.0f} s"
            " each way, % of one core):"
        )
        print(f"  live page closed: {mean_c:.1f} %  ({', '.join(f'{c:.1f}' for c in closed)})")
        print(f"  live page open:   {mean_o:.1f} %  ({', '.join(f'{c:.1f}' for c in opened)})")
        print(
            f"  the live page costs {mean_o - mean_c:+.1f} % of a core; the closed runs alone"
            f" spread over {noise:.1f} % ({events} events shown in the last window)"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "console", help="PNG folder")
    ap.add_argument("--models", type=Path, help="model dir (default: the service's own)")
    ap.add_argument(
        "--photos",
        type=Path,
        default=TESTDATA / "faces_by_identity",
        help="folder of per-person photo folders (default: the shared test photos)",
    )
    ap.add_argument("--seconds", type=float, default=15, help="each CPU measurement window")
    ap.add_argument("--rounds", type=int, default=3, help="CPU windows each way (alternated)")
    ap.add_argument("--no-shots", action="store_true", help="measure only")
    ap.add_argument("--no-figures", action="store_true", help="screenshots only")
    args = ap.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("chromium and chromium-driver are needed: apt-get install chromium chromium-driver")
        return 2
    if not args.photos.is_dir():
        print(f"{args.photos} is not a folder; give --photos DIR (one folder per person)")
        return 2
    models = args.models or load_settings(None).model_dir  # the service's own default
    with tempfile.TemporaryDirectory() as tmp, console_box(Path(tmp), models, KEY) as box:
        print(f"edge-face serve ready on {box.origin}")
        if not args.no_shots:
            screenshots(box, browser, args.out, args.photos)
        if not args.no_figures:
            if args.no_shots:  # the figures need people to list and to find
                with chromium(browser) as drv:
                    sign_in(drv, box)
                    enrol_people(drv, args.photos)
            figures(box, browser, args.photos, args.seconds, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
