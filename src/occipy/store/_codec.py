"""Rows <-> values for the SQL store: JSON columns (msgspec keeps 4.0 a float), entities, mixins, operations.

Imports the model, `store.base` and msgspec.
"""

from __future__ import annotations

from typing import Any

import msgspec

from occipy.model.category import AttributeDef, Mixin
from occipy.model.entity import DEFAULT_TENANT, Entity
from occipy.store.base import Operation

_encode = msgspec.json.Encoder().encode
_decode_mixins = msgspec.json.Decoder(list[str]).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


def json_text(value: Any) -> str:
    # msgspec writes floats with their ".0" (4.0 -> "4.0"), so a float comes back a float.
    return _encode(value).decode()


def mixin_to_json(mixin: Mixin) -> str:
    """The stored definition of a user mixin (every field, attribute definitions included)."""
    return json_text(
        {
            "scheme": mixin.scheme,
            "term": mixin.term,
            "title": mixin.title,
            "attributes": [
                {
                    "name": adef.name,
                    "type": adef.type,
                    "mutable": adef.mutable,
                    "required": adef.required,
                    "pattern": dict(adef.pattern) if adef.pattern is not None else None,
                    "default": adef.default,
                    "description": adef.description,
                    "write_once": adef.write_once,
                }
                for adef in mixin.attributes
            ],
            "actions": list(mixin.actions),
            "depends": list(mixin.depends),
            "applies": list(mixin.applies),
            "location": mixin.location,
            "user_defined": mixin.user_defined,
            "owner": mixin.owner,
            "tenant": mixin.tenant,
        }
    )


def mixin_from_json(text: str) -> Mixin:
    """The Mixin stored by `mixin_to_json`."""
    data = _decode_object(text)
    return Mixin(
        scheme=data["scheme"],
        term=data["term"],
        title=data.get("title"),
        attributes=tuple(
            AttributeDef(
                name=adef["name"],
                type=adef.get("type", "string"),
                mutable=adef.get("mutable", True),
                required=adef.get("required", False),
                pattern=adef.get("pattern"),
                default=adef.get("default"),
                description=adef.get("description"),
                write_once=adef.get("write_once", False),
            )
            for adef in data.get("attributes", ())
        ),
        actions=tuple(data.get("actions", ())),
        depends=tuple(data.get("depends", ())),
        applies=tuple(data.get("applies", ())),
        location=data.get("location"),
        user_defined=data.get("user_defined", True),
        owner=data.get("owner"),
        # User mixins defined before tenants existed belong to the default tenant.
        tenant=data.get("tenant") or (DEFAULT_TENANT if data.get("user_defined", True) else None),
    )


def entity_row(entity: Entity) -> dict[str, Any]:
    return {
        "entity_id": entity.entity_id,
        "kind": entity.kind,
        "owner": entity.owner,
        "tenant": entity.tenant,
        "backend_id": entity.backend_id,
        "source": entity.source,
        "target": entity.target,
        "mixins": json_text(entity.mixins),
        "attributes": json_text(entity.attributes),
    }


def operation_row(op: Operation) -> dict[str, Any]:
    return {
        "location": op.location,
        "action": op.action,
        "state": op.state,
        "message": op.message,
        "owner": op.owner,
        "tenant": op.tenant,
        "created": op.created,
        "updated": op.updated,
        "seq": op.seq,
        "params": json_text(op.params),
        "result": json_text(op.result),
    }


def entity_from_row(row: Any) -> Entity:
    """The Entity of an `entities` row."""
    return Entity(kind=row.kind, entity_id=row.entity_id, location=row.location,
                  mixins=tuple(_decode_mixins(row.mixins)), attributes=_decode_object(row.attributes),
                  tenant=row.tenant, owner=row.owner, backend_id=row.backend_id)


def operation_from_row(row: Any) -> Operation:
    """The Operation of an `operations` row."""
    return Operation(op_id=row.op_id, location=row.location, action=row.action, state=row.state,
                     message=row.message, tenant=row.tenant, owner=row.owner, created=row.created,
                     updated=row.updated, seq=row.seq, params=_decode_object(row.params),
                     result=_decode_object(row.result))
