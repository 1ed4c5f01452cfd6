"""Sync over HTTPS on loopback with real certificates (openssl CLI): the box verifies the
hub against `sync.ca_file`, and a hub with `require_client_cert` refuses a box without a
client certificate signed by its `sync.client_ca_file`, even with a valid token."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from edge.config import SyncConfig
from edge.store.hlc import Hlc, wall_ms
from edge.sync.codec import PushBatch
from edge.sync.hub import Hub, token_hash, verify_client_certs
from edge.sync.hub_sqlite import SqliteHubStore
from edge.sync.link import HttpLink, HubRefused, HubUnavailable, client_tls
from edge.sync.record import Meta, Record, Vector, Versioned

TOKEN = "tls-box-token-0123456789abcdef"


def _openssl(*args: str) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        pytest.skip("the openssl command is not installed (apt-get install openssl)")
    subprocess.run([exe, *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    for name in ("server", "ca"):
        subj = "/CN=127.0.0.1" if name == "server" else "/CN=edge-face test box CA"
        extra = ["-addext", "subjectAltName=IP:127.0.0.1"] if name == "server" else []
        key, pem = str(d / f"{name}.key"), str(d / f"{name}.pem")
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", subj,
                 *extra, "-keyout", key, "-out", pem)  # fmt: skip
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=box-a",
             "-keyout", str(d / "box.key"), "-out", str(d / "box.csr"))  # fmt: skip
    _openssl("x509", "-req", "-in", str(d / "box.csr"), "-CA", str(d / "ca.pem"),
             "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "1",
             "-out", str(d / "box.pem"))  # fmt: skip
    return d


@pytest.fixture
async def hub_url(tmp_path: Path, pki: Path) -> AsyncIterator[str]:
    cfg = SyncConfig(
        enabled=True, role="hub", client_ca_file=pki / "ca.pem", require_client_cert=True,
        boxes=[{"id": "box-a", "token_sha256": [token_hash(TOKEN)], "instances": ["i"]}],
    )  # fmt: skip
    store = SqliteHubStore(tmp_path / "hub.sqlite3")
    hub = Hub(store, cfg)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    verify_client_certs(ctx, cfg)
    app = web.Application()
    app.router.add_post("/sync/v1/push", hub.push)
    app.router.add_get("/sync/v1/feed", hub.feed)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()
    store.close()


def _batch() -> PushBatch:
    s = Hlc(wall_ms(), 0, "box-a")
    v = Vector.from_float32("M", "M", np.ones(4, np.float32) / 2)
    rec = Record("u1", "i", meta=Versioned(s, Meta("", "k", "[]", 1)),
                 expiry=Versioned(s, 2**31), vectors=(("fp", Versioned(s, v)),))  # fmt: skip
    return PushBatch("o", [(1, rec)])


async def test_a_box_with_a_client_certificate_syncs_over_https(hub_url: str, pki: Path) -> None:
    tls = client_tls(pki / "server.pem", pki / "box.pem", pki / "box.key")
    link = HttpLink(hub_url, TOKEN, tls=tls)
    try:
        assert (await link.push(_batch())).applied == 1
        page = await link.feed(["i"], "fp", 0, 10, 0)
        assert [r.uuid for _, r in page.records] == ["u1"]
    finally:
        await link.close()


async def test_no_client_certificate_is_refused_even_with_a_valid_token(
    hub_url: str, pki: Path
) -> None:
    link = HttpLink(hub_url, TOKEN, tls=client_tls(pki / "server.pem", None, None))
    try:
        with pytest.raises(HubRefused, match="client certificate"):
            await link.push(_batch())
    finally:
        await link.close()


async def test_a_hub_certificate_not_signed_by_ca_file_is_not_trusted(
    hub_url: str, pki: Path
) -> None:
    tls = client_tls(pki / "ca.pem", pki / "box.pem", pki / "box.key")  # wrong CA for the hub
    link = HttpLink(hub_url, TOKEN, tls=tls)
    try:
        with pytest.raises(HubUnavailable, match="certificate"):
            await link.push(_batch())
    finally:
        await link.close()
