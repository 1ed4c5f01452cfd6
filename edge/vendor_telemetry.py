"""Keep third-party telemetry off: the box makes no connection its owner did not configure.

`import openvino` initialises Intel's `openvino_telemetry` (through `openvino.tools.ovc`), and
so does `import nncf`. Unless a consent file says otherwise, that client writes
`~/intel/openvino_ga_cid` and `~/intel/stats` and sends events to an analytics host, with no
setting of ours involved. The package offers no environment switch, and its opt-out writes a
file in the user's home. So, before either library can be imported through `edge`, we make
its consent check answer "declined" (no files written, no events queued) and its sender a
no-op (nothing leaves even if some caller forces a send). `edge/__init__.py` calls `disable()`,
so every entry point (service, CLI, benchmarks, evaluation, tools, tests) is covered.
"""

from __future__ import annotations

from typing import Any

_done = False


def disable() -> bool:
    """Turn vendor telemetry off in this process; True if the telemetry package is present."""
    global _done
    try:
        from openvino_telemetry import main as tm_main
        from openvino_telemetry.utils import opt_in_checker, sender
    except ImportError:  # not installed: nothing can send
        return False
    if _done:
        return True

    def declined(self: Any, *args: Any, **kwargs: Any) -> Any:
        return opt_in_checker.ConsentCheckResult.DECLINED

    def send_nothing(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    opt_in_checker.OptInChecker.check = declined
    sender.TelemetrySender.send = send_nothing
    # A library imported before us may already hold the singleton with consent given.
    instance = getattr(tm_main.Telemetry, "_SingletonMetaClass__single_instance", None)
    if instance is not None:
        instance.consent = False
    _done = True
    return True
