"""Cameras: frame sources, tracking, per-track recognition + liveness decisions."""
