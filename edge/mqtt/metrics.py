"""Prometheus series of the MQTT bridge.

Events are counted per kind and, for camera events, per camera (taken from the payload), so a
camera whose events stop reaching the broker shows up next to its frame counters.
"""

from __future__ import annotations

from edge.metrics import REGISTRY

EVENTS_PUBLISHED = REGISTRY.counter(
    "edge_mqtt_events_published_total", "Events handed to the bridge's queue, by kind and camera"
)
DELIVERED = REGISTRY.counter(
    "edge_mqtt_messages_delivered_total", "Messages acknowledged by the broker"
)
QUEUE_DROPPED = REGISTRY.counter(
    "edge_mqtt_queue_dropped_total",
    "Messages dropped: oldest removed from a full queue, or refused by the client",
)
CONNECTS = REGISTRY.counter(
    "edge_mqtt_connects_total", "Successful connections to the broker (first one included)"
)
