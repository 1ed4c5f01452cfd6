"""A real, private PostgreSQL cluster for the hub engine tests and the hub benchmark.

Debian's `postgresql` package provides the binaries (`/usr/lib/postgresql/<v>/bin`); the
system service is never used. The cluster lives in a temp dir, listens on a free loopback
port only (no unix socket), and uses password (scram) authentication, so the tests go
through the same login a production hub does. PostgreSQL refuses to run as root: as root
the server runs as the `postgres` user the package creates.

`shared_cluster()` is the test session's one cluster: started on first use (so a run without
PostgreSQL tests never starts it), stopped when the test process exits; tests take a fresh
database of it each (`new_database()`).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.net import free_port


def pg_bindir() -> Path | None:
    """The newest installed server's bin dir (None: `apt-get install postgresql`)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found.sort(key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class PgCluster:
    def __init__(self, *, durable: bool = False) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError(
                "PostgreSQL server binaries not found: apt-get install postgresql "
                "(the tests start their own cluster; the system service stays off)"
            )
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="edge-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.user = "edge"
        self.password = secrets.token_urlsafe(16)
        self._run_as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root
            owner = pwd.getpwnam("postgres")
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]
        pwfile = self.base / "pw"
        pwfile.write_text(self.password + "\n")
        if self._run_as:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        pwfile.chmod(0o600)
        self._pg(
            "initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        pwfile.unlink()
        opts = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            "-c unix_socket_directories=''",
        ]
        if not durable:  # tests never pull the plug; fsync only slows them down
            opts += ["-c fsync=off", "-c full_page_writes=off"]
        self._pg(
            "pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"),
            "-o", " ".join(opts), "-w", "-t", "60", "start",
        )  # fmt: skip
        self._n = 0

    def _pg(self, tool: str, *args: str) -> None:
        cmd = [*self._run_as, str(self.bindir / tool), *args]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=self.base, check=False)
        if res.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({res.returncode}): {res.stderr}\n{tail}")

    def url(self, dbname: str = "postgres", *, password: bool = True) -> str:
        auth = f"{self.user}:{self.password}" if password else self.user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL (password included)."""
        import psycopg

        self._n += 1
        name = f"hub_{os.getpid()}_{self._n}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self) -> None:
        """A crash-like (immediate) restart: every client connection is cut."""
        log = str(self.base / "server.log")
        self._pg("pg_ctl", "-D", str(self.data), "-l", log, "-m", "immediate", "-w", "restart")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        for _ in range(50):  # the server may still be releasing files
            shutil.rmtree(self.base, ignore_errors=True)
            if not self.base.exists():
                break
            time.sleep(0.1)


_cluster: PgCluster | None = None


def shared_cluster() -> PgCluster:
    """The test process's one cluster, started on first use, stopped at exit."""
    global _cluster
    if _cluster is None:
        _cluster = PgCluster()
        atexit.register(_cluster.stop)
    return _cluster
