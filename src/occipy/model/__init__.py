"""OCCI Core model: categories, entities, the registry and the state tables (GFD.221, GFD.224).

Standard library only; imports nothing but `occipy.errors`.
"""

from occipy.model.category import Action, AttributeDef, AttributeValue, Category, Kind, Mixin, split_type_id
from occipy.model.entity import Entity
from occipy.model.registry import Registry

__all__ = [
    "Action",
    "AttributeDef",
    "AttributeValue",
    "Category",
    "Entity",
    "Kind",
    "Mixin",
    "Registry",
    "split_type_id",
]
