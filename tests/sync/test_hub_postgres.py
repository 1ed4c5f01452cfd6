"""The PostgreSQL hub as a user configures it: `sync.hub_database` picks the engine, the
mistakes a user makes fail at start naming the setting (and never echo the password), and
two real `edge-face serve` hub processes in front of one PostgreSQL serve one fleet. The
engine's own contract runs in test_hubstore.py (both engines, same suite)."""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from edge.config import ConfigError, load_settings
from edge.sync.hub import token_hash
from edge.sync.hub_postgres import PostgresHubStore
from edge.sync.service import open_hub_store
from edge.usererror import UserError
from tests.support.faces import FACES
from tests.support.images import pic
from tests.support.net import free_port
from tests.support.postgres import PgCluster, shared_cluster
from tests.support.servers import serve_process
from tests.sync.test_fleet import INSTANCE, Node, eventually, write_cfg


@pytest.fixture
def pg() -> PgCluster:
    return shared_cluster()  # one per test session, stopped at exit


HUB = {"enabled": True, "role": "hub",
       "boxes": [{"id": "a", "token_sha256": ["0" * 64], "instances": ["x"]}]}  # fmt: skip


@pytest.mark.parametrize(
    ("sync", "says"),
    [
        ({"hub_database": "mysql://h/db"}, "sync.hub_database takes a postgresql://"),
        ({"hub_database": "postgresql://h/db", "hub_path": "/x.sqlite3"}, "not both"),
    ],
)
def test_bad_hub_database_settings_name_the_setting(sync: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_settings(None, sync={**HUB, **sync})


def test_an_unreachable_server_fails_naming_the_setting_without_the_password(
    tmp_path: Path,
) -> None:
    url = f"postgresql://edge:s3cret-pw@127.0.0.1:{free_port()}/hub"  # nothing listens there
    s = load_settings(None, data_dir=str(tmp_path), sync={**HUB, "hub_database": url})
    assert "s3cret-pw" not in repr(s.sync) and "s3cret-pw" not in str(s.model_dump(mode="json"))
    with pytest.raises(UserError, match=r"sync\.hub_database") as e:
        open_hub_store(s)
    assert "s3cret-pw" not in str(e.value) and "127.0.0.1" in str(e.value)
    assert "server runs" in str(e.value)  # says what to check


def test_a_wrong_password_is_refused_and_not_echoed(pg: PgCluster, tmp_path: Path) -> None:
    url = pg.new_database().replace(pg.password, "wrong-pw-123")
    s = load_settings(None, data_dir=str(tmp_path), sync={**HUB, "hub_database": url})
    with pytest.raises(UserError, match="password authentication failed") as e:
        open_hub_store(s)
    assert "wrong-pw-123" not in str(e.value) and pg.password not in str(e.value)


def test_the_password_can_come_from_a_file(pg: PgCluster, tmp_path: Path) -> None:
    url = pg.new_database().replace(f":{pg.password}@", "@")
    pw = tmp_path / "pgpass"
    pw.write_text(pg.password + "\n")
    s = load_settings(None, data_dir=str(tmp_path), sync={
        **HUB, "hub_database": url, "hub_database_password_file": str(pw)})  # fmt: skip
    store, where = open_hub_store(s)
    try:
        assert isinstance(store, PostgresHubStore) and store.head() == 0
        assert where.startswith("edge@127.0.0.1:") and pg.password not in where
    finally:
        store.close()
    assert not (tmp_path / "hub.sqlite3").exists()  # not the SQLite default


def test_sqlite_stays_the_default(tmp_path: Path) -> None:
    store, where = open_hub_store(load_settings(None, data_dir=str(tmp_path), sync=HUB))
    store.close()
    assert where == str(tmp_path / "hub.sqlite3") and Path(where).exists()


def test_a_missing_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # As on a hub installed without the extra: importing psycopg fails.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "edge.sync.hub_postgres")
    s = load_settings(None, data_dir=str(tmp_path), sync={
        **HUB, "hub_database": "postgresql://edge@127.0.0.1:1/hub"})  # fmt: skip
    with pytest.raises(UserError, match=r"edge-face\[hub-postgres\]"):
        open_hub_store(s)


@pytest.mark.slow
def test_two_hub_processes_on_one_postgresql_serve_one_fleet(
    pg: PgCluster, tmp_path: Path, model_dir: Path, testdata: Path
) -> None:
    """Two stateless `edge-face serve` hubs share one database; a box pushes to the first,
    and the second hub's own gallery (it pulls the shared feed) receives the enrolment and
    then the delete, woken by the database's notification rather than a poll timeout.
    Neither hub logs the database password."""
    url = pg.new_database()
    token = "pg-fleet-token-0123456789abcdef"
    # The hubs' own long-polls outlast the waits below: the second hub's gallery only gets
    # the change in time if the first hub's commit wakes it (NOTIFY).
    hub_sync = {"role": "hub", "hub_database": url, "long_poll_s": 200,
                "boxes": [{"id": "box-a", "token_sha256": [token_hash(token)],
                           "instances": [INSTANCE]}]}  # fmt: skip
    hubs = [Node(f"hub{i}", write_cfg(tmp_path / f"hub{i}" / "edge.yaml", model_dir, hub_sync,
                                      f"hub{i}"), tmp_path / f"hub{i}.log")
            for i in (1, 2)]  # fmt: skip
    box = Node("box-a", write_cfg(tmp_path / "box" / "edge.yaml", model_dir, {
        "upstream": f"http://127.0.0.1:{hubs[0].port}", "token": token, "long_poll_s": 2,
        "retry_min_s": 0.2, "retry_max_s": 1.0}, "box-a"), tmp_path / "box.log")  # fmt: skip
    nodes = [*hubs, box]
    try:
        for node in nodes:
            node.start()
        photo = pic(testdata / "faces_by_identity" / "barack_obama", "1")
        uuid = box.enrol(photo, "obama")
        eventually(lambda: hubs[1].has(uuid), 90, why="the second hub's gallery gets it")
        assert hubs[0].has(uuid)
        assert box.call("DELETE", f"{FACES}/{uuid}")[0] == 204
        eventually(lambda: not hubs[1].has(uuid), 90, why="the delete reaches the second hub")
        store = PostgresHubStore(url)
        try:
            got = store.get(uuid)
            assert got is not None and got.deleted is not None and store.counts().records == 0
        finally:
            store.close()
    finally:
        for node in nodes:
            node.stop()
    for hub in hubs:
        text = hub.log.read_text()
        assert "sync hub: edge@127.0.0.1" in text and pg.password not in text


def test_the_store_recovers_after_the_server_restarts(pg: PgCluster) -> None:
    """A hub keeps running through a PostgreSQL restart: the call that meets the dead
    connections fails (boxes retry failed calls), the next one reconnects, nothing is lost."""
    from edge.store.hlc import Hlc
    from edge.sync.record import tombstone

    store = PostgresHubStore(pg.new_database())
    try:
        store.push("box-a", [(1, tombstone("u1", "i1", Hlc(10, 0, "box-a")))])
        for _ in range(3):  # several idle connections in the pool
            threads = [threading.Thread(target=store.head) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        pg.restart()
        with contextlib.suppress(psycopg.OperationalError):
            store.head()  # may meet a cut connection
        assert store.acked("box-a") == 1 and store.get("u1") is not None
        assert store.push("box-a", [(2, tombstone("u2", "i1", Hlc(11, 0, "box-a")))]).applied == 1
    finally:
        store.close()


def test_a_push_through_one_store_wakes_the_listeners_of_another(pg: PgCluster) -> None:
    """Two hub processes: the one that did not take a push learns of it from PostgreSQL."""
    from edge.store.hlc import Hlc
    from edge.sync.record import tombstone

    url = pg.new_database()
    a, b = PostgresHubStore(url), PostgresHubStore(url)
    woke = threading.Event()
    try:
        a.listen(woke.set)
        assert woke.wait(30), "listening (the first wake-up follows the connection)"
        woke.clear()
        b.push("box-b", [(1, tombstone("u1", "i1", Hlc(10, 0, "box-b")))])
        assert woke.wait(30), "b's commit reached a's listener"
    finally:
        a.close()
        b.close()


@pytest.mark.slow
def test_serve_with_an_unreachable_database_exits_naming_the_setting(
    tmp_path: Path, model_dir: Path
) -> None:
    url = f"postgresql://edge:s3cret-pw@127.0.0.1:{free_port()}/hub"  # nothing listens there
    cfg = write_cfg(tmp_path / "edge.yaml", model_dir, {**HUB, "hub_database": url}, "hub")
    log = tmp_path / "serve.log"
    proc = serve_process(cfg, free_port(), log)
    try:
        assert proc.wait(300) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "sync.hub_database: cannot open the hub database edge@127.0.0.1:" in text, text
    assert "s3cret-pw" not in text and "Traceback" not in text
