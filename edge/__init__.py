"""edge-face: on-device face recognition and liveness with an AnySee-compatible REST API."""

from edge.vendor_telemetry import disable as _disable_vendor_telemetry

__version__ = "0.1.0"

# Before anything can import openvino or nncf through this package (see the module's why).
_disable_vendor_telemetry()
