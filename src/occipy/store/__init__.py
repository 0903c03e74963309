"""Persistence of entities, user mixins and operations behind the `Store` protocol."""
