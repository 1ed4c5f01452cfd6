"""Operational endpoints: health, readiness, metrics, docs page."""

from __future__ import annotations

import re
from pathlib import Path

from edge.api.app import create_app
from tests.support.servers import (
    KEY_A,
    Gate,
    Server,
    add_test_routes,
    api_settings,
    start_server,
    stop_server,
)


def _value(metrics: str, series: str) -> float:
    m = re.search(r"^" + re.escape(series) + r" ([0-9.e+-]+)$", metrics, re.M)
    assert m, f"{series} not in /metrics"
    return float(m.group(1))


def test_public_endpoints_need_no_key(warm_server: tuple[Server, Gate]) -> None:
    srv, _ = warm_server
    for path in ("/healthz", "/readyz", "/api/v1/openapi.json", "/docs", "/metrics"):
        r = srv.call("GET", path, key=None)
        assert r.status == 200, (path, r.raw)
        assert r.headers.get("x-request-id")
    assert srv.call("GET", "/healthz", key=None).json == {"status": "ok"}


def test_readyz_is_503_until_warm_up_then_true(warm_server: tuple[Server, Gate]) -> None:
    srv, _ = warm_server
    before = srv.notes["readyz_before"]
    assert before.status == 503
    assert before.json["code"] == 503 and before.json["name"] == "service_unavailable"
    assert set(before.json) == {"code", "name", "message"}  # api.md §1, exactly
    assert before.json["message"].startswith("not ready: ") and len(before.json["message"]) > 11
    after = srv.call("GET", "/readyz", key=None)
    assert after.status == 200 and after.json == {"ready": True}


def test_metrics_have_route_histograms_and_model_inference(
    warm_server: tuple[Server, Gate],
) -> None:
    srv, _ = warm_server
    text0 = srv.call("GET", "/metrics", key=None).raw.decode()
    done0 = (
        _value(text0, 'edge_http_requests_total{method="GET",route="/test/infer",status="200"}')
        if 'route="/test/infer",status="200"' in text0
        else 0.0
    )
    emb0 = _value(text0, 'edge_model_inference_seconds_count{backend="openvino",role="embedding"}')
    assert srv.call("GET", "/test/infer").status == 200
    assert srv.call("GET", "/api/v1/raw-path-4711", key=None).status == 404
    text = srv.call("GET", "/metrics", key=None).raw.decode()

    assert "# TYPE edge_http_request_seconds histogram" in text
    assert 'edge_http_request_seconds_bucket{method="GET",route="/test/infer",le="+Inf"}' in text
    ok = 'edge_http_requests_total{method="GET",route="/test/infer",status="200"}'
    assert _value(text, ok) == done0 + 1
    # the embedding model ran once more for that request (warm-up ran it before)
    emb = 'edge_model_inference_seconds_count{backend="openvino",role="embedding"}'
    assert _value(text, emb) == emb0 + 1
    # unknown paths are one label, not one series per raw path
    assert "raw-path-4711" not in text
    assert 'route="unmatched",status="404"' in text


def test_metrics_can_require_a_key(tmp_path: Path, model_dir: Path) -> None:
    settings = api_settings(tmp_path, model_dir, metrics_need_key=True)
    app = create_app(settings, load_models=False)
    add_test_routes(app, Gate())
    srv = start_server(app, settings)
    try:
        assert srv.call("GET", "/metrics", key=None).status == 401
        assert srv.call("GET", "/metrics", key=KEY_A).status == 200
        assert srv.call("GET", "/healthz", key=None).status == 200
        doc = srv.call("GET", "/api/v1/openapi.json", key=None).json
        assert doc["paths"]["/metrics"]["get"].get("security") != []
        assert "401" in doc["paths"]["/metrics"]["get"]["responses"]
    finally:
        stop_server(srv)


def test_docs_page_is_self_contained(warm_server: tuple[Server, Gate]) -> None:
    srv, _ = warm_server
    r = srv.call("GET", "/docs", key=None)
    assert r.headers["content-type"].startswith("text/html")
    page = r.raw.decode()
    assert "/api/v1/openapi.json" in page
    # no CDN: nothing is loaded from another host
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script src" not in page and "<link" not in page
