"""`edge-face serve`: bind first, check the certificate and models, then run the service.

The order matters to an operator: a taken port or a bad certificate fails in a second with
one line, before minutes of model loading; `edge.api.server` does the serving.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from edge.api.server import bind_listeners, check_models, serve, tls_context
from edge.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (default: server.host)")
    parser.add_argument("--port", type=int, help="listen port (default: server.port; 0 = any)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    host = getattr(args, "host", None) or settings.server.host
    port = getattr(args, "port", None)
    port = settings.server.port if port is None else port
    config = getattr(args, "config", None) or os.environ.get("EDGE_CONFIG")
    config_path = Path(config).expanduser().resolve() if config else None
    sockets = bind_listeners(host, port)  # first: a taken port fails before anything loads
    try:
        tls_context(settings)  # a bad certificate, too
        if settings.sync.loads_models:  # a hub without the face API opens no model file
            check_models(settings, config_path)
        return asyncio.run(serve(settings, host, port, config_path=config_path, sockets=sockets))
    finally:
        for sock in sockets:
            sock.close()
