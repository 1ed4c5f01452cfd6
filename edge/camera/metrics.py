"""Prometheus series of the camera path, labelled by camera name.

Counted where the thing happens (capture thread, worker loop) rather than copied from the
stats objects at scrape time, so `/metrics` needs no reference to the running cameras.
There is no gauge type in the registry: a camera's frame rate is
`rate(edge_camera_frames_read_total[1m])` (read) or `..._frames_processed_total` (analysed).
"""

from __future__ import annotations

from edge.metrics import REGISTRY

FRAMES_READ = REGISTRY.counter(
    "edge_camera_frames_read_total", "Frames read from the camera source"
)
FRAMES_DROPPED = REGISTRY.counter(
    "edge_camera_frames_dropped_total",
    "Frames replaced in the one-frame slot before the worker took them",
)
RECONNECTS = REGISTRY.counter(
    "edge_camera_reconnects_total", "Times a camera source was (re)opened after a failure"
)
FRAMES_PROCESSED = REGISTRY.counter(
    "edge_camera_frames_processed_total", "Frames analysed by the camera worker"
)
FRAME_SECONDS = REGISTRY.histogram(
    "edge_camera_frame_seconds", "Analysis time of one camera frame (detect, track, decide)"
)
DECISIONS = REGISTRY.counter(
    "edge_camera_decisions_total", "Recognition events emitted, by decision"
)
DECISION_LATENCY = REGISTRY.histogram(
    "edge_camera_decision_latency_seconds",
    "Capture of a track's first frame to its first identity decision",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
