"""Smoke test of the PostgreSQL fixtures with psycopg 3 and SQLAlchemy."""

from __future__ import annotations

import threading

import psycopg
import pytest
import sqlalchemy as sa

from tests.services.postgres import PostgresDatabase, PostgresServer


def test_session_database_runs_sql_through_sqlalchemy(postgres_url: str, postgres_dsn: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    assert postgres_dsn == postgres_url.replace("postgresql+psycopg://", "postgresql://")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE smoke (id serial PRIMARY KEY, name text NOT NULL)"))
            conn.execute(sa.text("INSERT INTO smoke (name) VALUES ('a'), ('b')"))
            names = conn.execute(sa.text("SELECT name FROM smoke ORDER BY id")).scalars().all()
            conn.execute(sa.text("DROP TABLE smoke"))
        assert names == ["a", "b"]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW fsync")).scalar() == "off"
            assert conn.execute(sa.text("SELECT inet_server_addr()::text")).scalar() == "127.0.0.1/32"
    finally:
        engine.dispose()


def test_listen_notify_round_trip(postgres_database: PostgresDatabase) -> None:
    received: list[tuple[str, str]] = []
    listening = threading.Event()

    def listen() -> None:
        with psycopg.connect(postgres_database.dsn, autocommit=True) as conn:
            conn.execute("LISTEN occipy_jobs")
            listening.set()
            for note in conn.notifies(timeout=10, stop_after=2):
                received.append((note.channel, note.payload))

    listener = threading.Thread(target=listen)
    listener.start()
    assert listening.wait(10)
    with psycopg.connect(postgres_database.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_notify('occipy_jobs', 'job-1')")
        conn.execute("NOTIFY occipy_jobs, 'job-2'")
    listener.join(15)
    assert not listener.is_alive()
    assert received == [("occipy_jobs", "job-1"), ("occipy_jobs", "job-2")]


def test_each_test_database_is_new_and_dropped_afterwards(postgres_server: PostgresServer) -> None:
    extra = postgres_server.create_database()
    with psycopg.connect(extra.dsn) as conn:
        conn.execute("CREATE TABLE t (x int)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    postgres_server.drop_database(extra.name)
    with psycopg.connect(postgres_server.database("postgres").dsn) as conn:
        names = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
    assert extra.name not in names
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(extra.dsn, connect_timeout=5).close()
