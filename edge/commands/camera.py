"""`edge-face camera`: watch one camera, print decisions as JSON lines, publish over MQTT.

Runs standalone (one process per camera, e.g. the `edge-face-camera@NAME` systemd unit).
With MQTT enabled it is its own MQTT device, `<device_id>-<name>` unless `--device-id` is
given, so its status/last will never overwrite those of the server process on the same box.
`--enroll-key KEY` enrols the best frame of the first person seen and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

from edge.camera.events import RecognitionEvent
from edge.camera.payload import recognition_payload
from edge.camera.service import EnrollRequest, edge_services
from edge.camera.sources import parse_source
from edge.config import CameraConfig, Settings
from edge.engine import Engine
from edge.errors import EdgeError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        default=None,
        help="V4L2 index, URL, gst pipeline, file or folder (default: the configured camera's)",
    )
    parser.add_argument("--name", default=None, help="camera name (default: cam)")
    parser.add_argument("--enroll-key", default=None, help="enrol the first person seen, then exit")
    parser.add_argument("--collection", default="", help="collection for --enroll-key")
    parser.add_argument("--enroll-timeout", type=float, default=10.0, help="seconds to wait")
    parser.add_argument("--detect-fps", type=float, default=None)
    parser.add_argument("--device-id", default=None, help="MQTT device id of this process")
    parser.add_argument("--no-mqtt", action="store_true", help="do not connect to MQTT")
    parser.add_argument(
        "--realtime",
        choices=["auto", "yes", "no"],
        default="auto",
        help="pace a video file at its fps (yes) or read every frame in order (no)",
    )


def _camera_config(settings: Settings, args: argparse.Namespace) -> CameraConfig:
    name = args.name or "cam"
    base = next((c for c in settings.cameras if c.name == name), None)
    data = base.model_dump() if base else {"name": name}
    if args.source is not None:
        data["source"] = args.source
    elif base is None:
        raise ValueError(f"--source is required: no camera named {name!r} in the config")
    data["enabled"] = True
    if args.detect_fps is not None:
        data["detect_fps"] = args.detect_fps
    if args.realtime != "auto":
        data["realtime"] = args.realtime == "yes"
    return CameraConfig(**data)


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        cam = _camera_config(settings, args)
        parse_source(cam.source)
    except ValueError as e:
        print(f"edge-face camera: {e}", file=sys.stderr)
        return 2
    settings = settings.model_copy(deep=True)
    settings.cameras = [cam]
    if args.no_mqtt:
        settings.mqtt.enabled = False
    settings.device_id = args.device_id or f"{settings.device_id}-{cam.name}"
    return asyncio.run(_main(settings, args, Path(args.config) if args.config else None))


def _open_engine(settings: Settings) -> Engine:
    """Models and store by the engine's one rule, warmed up before the camera starts."""
    engine = Engine.open(settings)
    try:
        engine.warm_up()
    except BaseException:
        engine.close()
        raise
    return engine


async def _main(settings: Settings, args: argparse.Namespace, config_path: Path | None) -> int:
    from edge import sdnotify

    loop = asyncio.get_running_loop()
    engine = await loop.run_in_executor(None, _open_engine, settings)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def print_event(event: RecognitionEvent) -> None:
        print(json.dumps(recognition_payload(event)), flush=True)

    code = 0
    try:
        async with edge_services(engine, config_path=config_path) as services:
            services.listeners.append(print_event)
            runner = services.cameras[settings.cameras[0].name]
            sdnotify.notify("READY=1")
            if args.enroll_key is not None:
                req = EnrollRequest(
                    key=args.enroll_key, collection=args.collection, timeoutS=args.enroll_timeout
                )
                try:
                    result = await loop.run_in_executor(None, services.enroll, req)
                except EdgeError as e:
                    print(json.dumps({"error": e.body()}), flush=True)
                    return 1
                print(json.dumps({"enrolled": result}), flush=True)
                return 0
            interval = sdnotify.watchdog_interval() or 5.0
            while not stop.is_set() and not runner.worker.finished.is_set():
                if runner.worker.alive and runner.capture.alive:
                    sdnotify.notify("WATCHDOG=1")  # a dead worker lets systemd restart us
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=min(interval, 0.5))
            sdnotify.notify("STOPPING=1")
            print(json.dumps({"camera": runner.worker.stats()}), file=sys.stderr, flush=True)
    finally:
        engine.close()
    return code
