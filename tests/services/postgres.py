"""pytest plugin: a private PostgreSQL server for the test session.

`postgres_server` runs initdb in a temp dir (as the `postgres` user when we are root: initdb refuses
root) and starts `postgres` itself as our child on 127.0.0.1 and a free port, with fsync off.
`postgres_url` / `postgres_dsn` name one database for the whole session; `postgres_database` gives
each test a database of its own and drops it afterwards. Needs the `postgres` extra (psycopg 3) and
the PostgreSQL server binaries (bootstrap profile `postgres`). Env: OCCIPY_PG_BINDIR.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.services._process import (
    ServiceError,
    die_with_parent,
    free_port,
    run,
    start_retrying_port_clash,
    stop_process,
    wait_for,
)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def pg_bindir() -> Path:
    """The newest installed PostgreSQL server's bin dir (OCCIPY_PG_BINDIR overrides)."""
    if os.environ.get("OCCIPY_PG_BINDIR"):
        return Path(os.environ["OCCIPY_PG_BINDIR"])
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not candidates:
        raise ServiceError("PostgreSQL: no server binaries under /usr/lib/postgresql "
                           "(run `bash scripts/bootstrap.sh postgres`)")
    return candidates[-1].parent


@dataclass(frozen=True)
class PostgresDatabase:
    """One database: `url` for SQLAlchemy (psycopg 3 dialect), `dsn` for psycopg/libpq."""

    name: str
    url: str
    dsn: str


@dataclass
class PostgresServer:
    """A running cluster; `create_database()`/`drop_database()` manage databases on it."""

    host: str
    port: int
    user: str
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.directory / "postgres.log"

    def database(self, name: str) -> PostgresDatabase:
        where = f"{self.user}@{self.host}:{self.port}/{name}"
        return PostgresDatabase(name, f"postgresql+psycopg://{where}", f"postgresql://{where}")

    def create_database(self, name: str | None = None) -> PostgresDatabase:
        """A new empty database (a unique name unless one is given)."""
        name = name or f"test_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.database(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing whatever connections a test left open on it."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.database("postgres").dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # names are ours, not user input

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit.
        stop_process(self.process, sig=signal.SIGINT, timeout=STOP_TIMEOUT)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres(*, user: str = "postgres", settings: dict[str, str] | None = None) -> PostgresServer:
    """initdb + postgres on a free port in a new temp dir; raises ServiceError with the log tail."""
    try:
        import psycopg
    except ImportError:
        raise ServiceError("PostgreSQL fixture needs psycopg 3: `uv sync --extra postgres`") from None
    bindir = pg_bindir()
    directory = Path(tempfile.mkdtemp(prefix="occipy-pg-"))
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceError("PostgreSQL: running as root and there is no `postgres` user") from None
        os.chown(directory, account.pw_uid, account.pw_gid)
        run_as = "postgres"
    port = free_port()
    log = directory / "postgres.log"
    options = {
        "listen_addresses": "127.0.0.1", "unix_socket_directories": str(directory), "fsync": "off",
        "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "200",
        "logging_collector": "off",
    }
    options.update(settings or {})
    try:
        run([str(bindir / "initdb"), "-D", str(directory / "data"), "-U", user, "-A", "trust", "--no-sync",
             "--locale=C.UTF-8", "-E", "UTF8"], what="PostgreSQL initdb", timeout=60, user=run_as)
        args = [str(bindir / "postgres"), "-D", str(directory / "data"), "-p", str(port)]
        for key, value in options.items():
            args += ["-c", f"{key}={value}"]
        with open(log, "wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       user=run_as, preexec_fn=die_with_parent(signal.SIGINT))  # noqa: PLW1509
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    server = PostgresServer("127.0.0.1", port, user, directory, process)

    def ready() -> bool:
        with psycopg.connect(server.database("postgres").dsn, connect_timeout=2):
            return True

    try:
        wait_for(ready, what=f"PostgreSQL on 127.0.0.1:{port}", timeout=START_TIMEOUT, process=process, log=log)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the session (stopped and deleted at the end)."""
    server = start_retrying_port_clash(start_postgres)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_session_database(postgres_server: PostgresServer) -> PostgresDatabase:
    return postgres_server.create_database("occipy")


@pytest.fixture(scope="session")
def postgres_url(postgres_session_database: PostgresDatabase) -> str:
    """SQLAlchemy URL (`postgresql+psycopg://...`) of the session's shared database."""
    return postgres_session_database.url


@pytest.fixture(scope="session")
def postgres_dsn(postgres_session_database: PostgresDatabase) -> str:
    """The same database as `postgres_url`, as a plain `postgresql://` URL for psycopg/libpq."""
    return postgres_session_database.dsn


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[PostgresDatabase]:
    """A database of this test's own, dropped (connections and all) when the test ends."""
    database = postgres_server.create_database()
    try:
        yield database
    finally:
        postgres_server.drop_database(database.name)
