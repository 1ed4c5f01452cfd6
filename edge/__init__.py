"""edge-face: on-device face recognition and liveness with an AnySee-compatible REST API."""

__version__ = "0.1.0"
