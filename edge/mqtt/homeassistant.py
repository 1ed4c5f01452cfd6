"""Home Assistant MQTT discovery: retained config messages that make HA show the device.

One connectivity binary sensor (from the retained status) and, per camera, a sensor holding
the key of the last person that camera decided on ("unknown" for strangers).
"""

from __future__ import annotations

import json
import re

from edge import __version__
from edge.config import Settings
from edge.mqtt.topics import Topics


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", text).strip("_") or "x"


def discovery_messages(
    settings: Settings, topics: Topics, cameras: list[str]
) -> list[tuple[str, bytes]]:
    node = _slug(f"edge_face_{settings.device_id}")
    root = settings.mqtt.discovery_prefix.rstrip("/")
    device = {
        "identifiers": [node],
        "name": f"edge-face {settings.device_id}",
        "manufacturer": "edge-face",
        "sw_version": __version__,
    }
    availability = {
        "topic": topics.status,
        "value_template": "{{ value_json.state }}",
        "payload_available": "online",
        "payload_not_available": "offline",
    }
    out: list[tuple[str, dict[str, object]]] = [
        (
            f"{root}/binary_sensor/{node}/online/config",
            {
                "name": "online",
                "unique_id": f"{node}_online",
                "device_class": "connectivity",
                "state_topic": topics.status,
                "value_template": "{{ 'ON' if value_json.state == 'online' else 'OFF' }}",
                "device": device,
            },
        )
    ]
    for cam in cameras:
        cam_slug = _slug(cam)
        template = (
            "{% if value_json.camera == '" + cam.replace("'", "") + "' %}"
            "{{ value_json.match.key if value_json.match else 'unknown' }}"
            "{% else %}{{ this.state }}{% endif %}"
        )
        out.append(
            (
                f"{root}/sensor/{node}/{cam_slug}_person/config",
                {
                    "name": f"{cam} person",
                    "unique_id": f"{node}_{cam_slug}_person",
                    "state_topic": topics.event("recognition"),
                    "value_template": template,
                    "json_attributes_topic": topics.event("recognition"),
                    "availability": [availability],
                    "device": device,
                },
            )
        )
    return [(t, json.dumps(body).encode()) for t, body in out]
