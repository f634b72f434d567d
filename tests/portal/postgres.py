"""A throwaway PostgreSQL server for the portal's tests: Debian's server binaries (scripts/setup.sh test installs
the `postgresql` package), a cluster made by initdb in a temporary folder, listening on 127.0.0.1 at a free port
only, trust authentication, no fsync. As root it runs as the `postgres` user (or `nobody`): PostgreSQL refuses to
run as root. Each test gets its own database, collated by ICU's en-US (not byte order, as most servers are)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.conftest import free_port

USER = "portal"  # the cluster's superuser, whom the tests connect as


class Unavailable(Exception):
    """No PostgreSQL server can run here (why is the message)."""


def server_bindir() -> Path:
    """Where initdb, pg_ctl and postgres are: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise Unavailable("no PostgreSQL server binaries (initdb): run scripts/setup.sh test")
    return Path(candidates[-1]).parent


def _runner() -> tuple[list[str], str | None]:
    """The command prefix to run the server as a non-root user, and that user (None: the current one)."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"], name
    raise Unavailable("running as root and there is no postgres or nobody user to run the server as")


class Cluster:
    def __init__(self) -> None:
        try:
            import psycopg
        except ImportError:
            raise Unavailable("psycopg is not installed (pip install -e '.[portal-postgres]')") from None
        self._psycopg = psycopg
        self.bindir = server_bindir()
        self.prefix, user = _runner()
        self.root = Path(tempfile.mkdtemp(prefix="edgevision-pg-"))  # not under pytest's root-only tmp folders
        if user is not None:
            shutil.chown(self.root, user)
        self.data = self.root / "data"
        self.port = free_port()
        try:
            self._start()
        except Unavailable:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self.prefix, str(self.bindir / tool), *args], capture_output=True, text=True)
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise Unavailable(f"{tool} failed ({result.returncode}): {result.stderr.strip()[-2000:]}\n{tail}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple]:
        with self._psycopg.connect(self.url(database), autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def new_database(self) -> str:
        """A fresh empty database's URL."""
        name = f"portal_{uuid.uuid4().hex[:12]}"
        self.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(Unavailable):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
