"""`edge-face people list|show|delete` as real subprocesses against a real loopback service.

The gallery is enrolled through the typed client with real photos; the commands find the
service and the api-key the way they do on a box (config port, generated key file).
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.client import Client
from tests.support.faces import FacesServer, face_server
from tests.support.servers import KEY_A


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[FacesServer]:
    with face_server(tmp_path_factory.mktemp("people"), model_dir) as srv:
        yield srv


@pytest.fixture
def client(srv: FacesServer) -> Iterator[Client]:
    c = Client(f"http://127.0.0.1:{srv.port}", KEY_A)
    yield c
    for e in list(c.entities()):
        c.delete(e.uuid)


@pytest.fixture
def box_env(srv: FacesServer, tmp_path: Path) -> dict[str, str]:
    """A box's environment: data dir with the generated key file, the service's port."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "api-key").write_text(KEY_A + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(EDGE_DATA_DIR=str(data), EDGE_SERVER__PORT=str(srv.port))
    return env


def photo(testdata: Path, name: str, i: int = 0) -> Path:
    return sorted((testdata / "faces_by_identity" / name).iterdir())[i]


def people(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "people", *argv],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def gallery(client: Client, testdata: Path) -> dict[str, list[str]]:
    """elon: 2 in 'door' + 1 in 'lobby'; mark: 1 in 'door'; guido: 1 with a ttl."""
    made: dict[str, list[str]] = {"elon": [], "mark": [], "guido": []}
    for i in range(2):
        made["elon"].append(
            client.create(photo(testdata, "elon_musk", i), key="elon", collection="door").uuid
        )
    made["elon"].append(
        client.create(
            photo(testdata, "elon_musk", 2), key="elon", collection="lobby", metadata={"floor": 3}
        ).uuid
    )
    made["mark"].append(
        client.create(photo(testdata, "mark_zuckerberg"), key="mark", collection="door").uuid
    )
    made["guido"].append(
        client.create(photo(testdata, "guido_van_rossum"), key="guido", ttl=3600).uuid
    )
    return made


def test_list_groups_enrolments_by_key(
    box_env: dict[str, str], gallery: dict[str, list[str]]
) -> None:
    r = people(box_env, "list", "--json")
    assert r.returncode == 0, r.stderr
    by_key = {p["key"]: p for p in json.loads(r.stdout)["people"]}
    assert sorted(by_key) == ["elon", "guido", "mark"]
    assert by_key["elon"]["enrolments"] == 3
    assert by_key["elon"]["collections"] == ["door", "lobby"]
    assert by_key["guido"]["collections"] == [""]
    assert by_key["elon"]["createdAt"] <= by_key["elon"]["updatedAt"]
    assert by_key["elon"]["createdAt"].endswith("Z")

    r = people(box_env, "list", "--collection", "door", "--json")
    by_key = {p["key"]: p for p in json.loads(r.stdout)["people"]}
    assert sorted(by_key) == ["elon", "mark"] and by_key["elon"]["enrolments"] == 2

    r = people(box_env, "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["KEY", "ENROLMENTS", "COLLECTIONS", "CREATED", "UPDATED"]
    assert lines[1].split()[:3] == ["elon", "3", "door,lobby"]
    assert lines[-1] == "3 people, 5 enrolments"


def test_show_lists_one_persons_enrolments(
    box_env: dict[str, str], gallery: dict[str, list[str]]
) -> None:
    r = people(box_env, "show", "elon", "--json")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)["enrolments"]
    assert [e["uuid"] for e in shown] == gallery["elon"]
    assert [e["collection"] for e in shown] == ["door", "door", "lobby"]
    assert shown[2]["metadata"] == {"floor": 3}
    assert shown[0]["expiresAt"] == "3000-01-01T00:00:00Z"

    r = people(box_env, "show", "elon")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("elon: 3 enrolment(s)")
    row = next(line for line in r.stdout.splitlines() if gallery["elon"][2] in line)
    assert "lobby" in row and "never" in row and "floor=3" in row
    guido = people(box_env, "show", "guido").stdout
    assert "never" not in guido  # a ttl shows its expiry time instead

    r = people(box_env, "show", "nobody")
    assert r.returncode == 1 and "no enrolments with key 'nobody'" in r.stderr


def test_delete_removes_every_enrolment_of_the_key(
    box_env: dict[str, str], client: Client, gallery: dict[str, list[str]]
) -> None:
    # Not a terminal and no --yes: refuse, say how to confirm, delete nothing.
    r = people(box_env, "delete", "elon")
    assert r.returncode == 2 and "--yes" in r.stderr
    assert len([e for e in client.entities() if e.key == "elon"]) == 3

    r = people(box_env, "delete", "elon", "--collection", "lobby", "--yes")
    assert r.returncode == 0, r.stderr
    assert "deleted 1 enrolment(s) of 'elon'" in r.stdout
    r = people(box_env, "delete", "elon", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"key": "elon", "deleted": 2}

    left = sorted(e.uuid for e in client.entities())
    assert left == sorted(gallery["mark"] + gallery["guido"])
    r = people(box_env, "delete", "elon", "--yes")
    assert r.returncode == 1 and "no enrolments with key 'elon'" in r.stderr


@pytest.mark.parametrize(("answer", "kept"), [("n", 1), ("y", 0)])
def test_delete_asks_on_a_terminal(
    box_env: dict[str, str],
    client: Client,
    gallery: dict[str, list[str]],
    answer: str,
    kept: int,
) -> None:
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "people", "delete", "mark"],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=box_env,
        )
        os.write(master, f"{answer}\n".encode())
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
        os.close(slave)
    assert "delete 1 enrolment(s) of 'mark' (collections 'door')? [y/N]" in out
    assert proc.returncode == (0 if kept == 0 else 1), err
    assert len([e for e in client.entities() if e.key == "mark"]) == kept


def test_errors_say_what_to_do(box_env: dict[str, str], srv: FacesServer, tmp_path: Path) -> None:
    r = people(box_env, "list", "--api-key", "wrong-key-123")
    assert r.returncode == 2 and "401" in r.stderr and "--api-key" in r.stderr
    r = people(box_env, "delete", "", "--yes")
    assert r.returncode == 2 and "KEY must not be empty" in r.stderr

    keyless = {**box_env, "EDGE_DATA_DIR": str(tmp_path / "empty")}
    r = people(keyless, "list")
    assert r.returncode == 2 and "no api-key" in r.stderr
