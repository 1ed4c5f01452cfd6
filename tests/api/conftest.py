"""API fixtures: real servers on loopback (see tests/support/servers.py), shared per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import GatedModels
from tests.support.faces import FacesServer, face_server
from tests.support.servers import (
    Gate,
    Server,
    add_test_routes,
    api_settings,
    start_server,
    stop_server,
    wait_ready,
)


@pytest.fixture(scope="module")
def warm_server(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path
) -> Iterator[tuple[Server, Gate]]:
    """The product app with loaded models (queue_limit=1) plus test-only routes.

    Its warm-up is held until the fixture has recorded what /readyz said before it.
    """
    from edge.api.app import create_app

    settings = api_settings(
        tmp_path_factory.mktemp("warm"), model_dir, queue_limit=1, inference_threads=2
    )
    models = GatedModels.load(settings)
    app = create_app(settings, models=models)
    gate = Gate()
    add_test_routes(app, gate)
    srv = start_server(app, settings)
    srv.notes["readyz_before"] = srv.call("GET", "/readyz", key=None)
    srv.notes["infer_before"] = srv.call("GET", "/test/infer")
    models.gate.set()
    wait_ready(srv)
    yield srv, gate
    gate.release.set()
    stop_server(srv)


@pytest.fixture(scope="module")
def cold_server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Server]:
    """No models loaded (always 503 on inference); a very low per-key rate limit."""
    from edge.api.app import create_app

    settings = api_settings(tmp_path_factory.mktemp("cold"), model_dir, rate_limit_per_key=0.001)
    app = create_app(settings, load_models=False)
    add_test_routes(app, Gate())
    srv = start_server(app, settings)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[FacesServer]:
    """The product app with the session's warmed models, one private data dir per module."""
    with face_server(tmp_path_factory.mktemp("faces"), model_dir) as srv:
        yield srv
