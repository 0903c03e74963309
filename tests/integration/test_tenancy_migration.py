"""Data made before tenants existed lands in the default tenant on first start (issue 8).

The database is made with the schema of the first release (git 118df59,
`src/occipy/store/schema.py`: no `tenant` columns, no operation `seq`/`params`), its rows written
the way that release's `store/sql.py` wrote them. A server then opens it: the store migration
adds the columns; the rows belong to `default`, which dora (tenant default) sees and alice
(tenant-a) does not.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import sqlalchemy as sa

from .tenancy_helpers import COMPUTE, basic_server, client

# ---- the first release's tables, as they were (git 118df59) ------------------------------------------

old = sa.MetaData()
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
old_entities = sa.Table(
    "entities", old,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("location", sa.Text, nullable=False, unique=True),
    sa.Column("entity_id", sa.Text, nullable=False, unique=True),
    sa.Column("kind", sa.Text, nullable=False, index=True),
    sa.Column("owner", sa.Text, nullable=False, index=True),
    sa.Column("backend_id", sa.Text, nullable=True),
    sa.Column("source", sa.Text, nullable=True, index=True),
    sa.Column("target", sa.Text, nullable=True, index=True),
    sa.Column("mixins", sa.Text, nullable=False),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
)
old_entity_mixins = sa.Table(
    "entity_mixins", old,
    sa.Column("location", sa.Text, primary_key=True),
    sa.Column("mixin", sa.Text, primary_key=True, index=True),
)
old_user_mixins = sa.Table(
    "user_mixins", old,
    sa.Column("type_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("location", sa.Text, nullable=True, unique=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("definition", sa.Text, nullable=False),
)
old_operations = sa.Table(
    "operations", old,
    sa.Column("op_id", sa.Text, primary_key=True),
    sa.Column("location", sa.Text, nullable=False, index=True),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False, index=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("result", sa.Text, nullable=False),
)

UUID = "5e1f0c1e-0000-4000-8000-00000000abcd"
LOCATION = f"/compute/{UUID}"
TAG = "http://example.org/legacy#old"
OPERATION = "0b1d0000-0000-4000-8000-000000000001"


def make_old_database(path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{path}")
    old.create_all(engine)
    now = time.time()
    with engine.begin() as conn:
        attributes = {"occi.core.id": f"urn:uuid:{UUID}", "occi.core.title": "made before tenants",
                      "occi.compute.cores": 2, "occi.compute.state": "inactive"}
        conn.execute(old_entities.insert(), {
            "location": LOCATION, "entity_id": f"urn:uuid:{UUID}", "kind": COMPUTE, "owner": "anonymous",
            "backend_id": None, "source": None, "target": None, "mixins": json.dumps([TAG]),
            "attributes": json.dumps(attributes), "created": now, "updated": now})
        conn.execute(old_entity_mixins.insert(), {"location": LOCATION, "mixin": TAG})
        definition = {"scheme": "http://example.org/legacy#", "term": "old", "title": "a tag from before",
                      "attributes": [], "actions": [], "depends": [], "applies": [], "location": "/legacy/",
                      "user_defined": True, "owner": "anonymous"}
        conn.execute(old_user_mixins.insert(), {"type_id": TAG, "seq": 1, "location": "/legacy/",
                                                "owner": "anonymous", "definition": json.dumps(definition)})
        conn.execute(old_operations.insert(), {
            "op_id": OPERATION, "location": LOCATION, "action": "create", "state": "succeeded", "message": None,
            "owner": "anonymous", "created": now, "updated": now, "result": "{}"})
    engine.dispose()


def test_rows_of_the_first_release_land_in_the_default_tenant(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    make_old_database(data / "occipy.db")
    server = basic_server(tmp_path)
    try:
        with client(server, "dora") as dora:
            entity = dora.get(LOCATION, headers={"Accept": "application/occi+json"})
            assert entity.status_code == 200, entity.text
            assert entity.json()["attributes"]["occi.core.title"] == "made before tenants"
            assert entity.json()["mixins"] == [TAG]
            assert dora.get("/legacy/", headers={"Accept": "text/uri-list"}).text.split() == [server.url + LOCATION]
            assert dora.get(f"/-/operations/{OPERATION}").status_code == 200
            discovery = dora.get("/-/", params={"category": TAG}, headers={"Accept": "application/occi+json"})
            assert [m["term"] for m in discovery.json()["mixins"]] == ["old"]
        with client(server, "alice") as alice:
            assert alice.get(LOCATION).status_code == 404
            assert alice.get("/legacy/").status_code == 404
            assert alice.get(f"/-/operations/{OPERATION}").status_code == 404
    finally:
        server.stop()
    engine = sa.create_engine(f"sqlite:///{data / 'occipy.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT tenant FROM entities WHERE location = :l"), {"l": LOCATION}).scalar() \
            == "default"
        assert conn.execute(sa.text("SELECT tenant FROM operations WHERE op_id = :o"), {"o": OPERATION}).scalar() \
            == "default"
        columns = {row[1] for row in conn.execute(sa.text("PRAGMA table_info(user_mixins)"))}
        assert "tenant" in columns
    engine.dispose()
