"""Stores for the store tests, so that a test file asks for the kind of store it needs instead of
writing its own opener.

`stores` gives, in turn, MemoryStore, SqlStore on SQLite and SqlStore on the suite's PostgreSQL
(tests/services/postgres.py), plus any URL in TEST_DATABASE_URLS; `sql_stores` the SQL ones
only. Each is a factory: every call opens a new store (for SQL on the same database: a restart,
or another worker), keyword arguments go to the store's constructor, and every store opened is
closed at the end of the test.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from occipy.store.base import Store
from occipy.store.memory import MemoryStore
from occipy.store.schema import metadata
from occipy.store.sql import SqlStore, make_engine

URLS = [url.strip() for url in os.environ.get("TEST_DATABASE_URLS", "sqlite,postgresql").split(",") if url.strip()]


def database_url(param: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The database of one parameter: a fresh SQLite file, the suite's PostgreSQL (a fresh database),
    or a URL from TEST_DATABASE_URLS with its tables dropped."""
    if param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'occipy.db'}"
    if param == "postgresql":
        return str(request.getfixturevalue("postgres_database").url)
    engine = make_engine(param)
    metadata.drop_all(engine)
    engine.dispose()
    return param


async def indexes_after_a_restart(path: Path, *older: str) -> set[str]:
    """The index names of the SQLite store at `path` once it was opened, changed by the `older`
    statements (as an older occipy left it) and opened again (its migration ran)."""
    for statements in (older, ()):
        store = SqlStore(f"sqlite:///{path}")
        await store.open()
        await store.close()
        with sqlite3.connect(path) as conn:
            for statement in statements:
                conn.execute(statement)
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


class StoreFactory:
    """Opens stores of one kind ("memory", or SQL on `url`); see the module docstring."""

    def __init__(self, kind: str, url: str = "") -> None:
        self.kind = kind
        self.url = url
        self.opened: list[Store] = []

    async def __call__(self, **options: Any) -> Store:
        store: Store = MemoryStore(**options) if self.kind == "memory" else SqlStore(self.url, **options)
        await store.open()
        self.opened.append(store)
        return store

    async def close(self) -> None:
        for store in self.opened:
            await store.close()


@pytest.fixture(params=["memory", *URLS])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    factory = StoreFactory(request.param, "" if request.param == "memory"
                           else database_url(request.param, tmp_path, request))
    yield factory
    await factory.close()


@pytest.fixture(params=URLS)
async def sql_stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    factory = StoreFactory(request.param, database_url(request.param, tmp_path, request))
    yield factory
    await factory.close()
