"""The demo's own store: `embed-assets demo` (and `make demo`) load their generated sample into the
schema `<EMBED_ASSETS_SCHEMA>_demo`, never into the store of the project's real data; the demo's
Dagster runs share the project's instance. Other commands reach the demo store with
`EMBED_ASSETS_SCHEMA=<schema>_demo` (`embed_assets_demo` by default)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from embed_assets.lib.collections import Collection, CollectionError
from embed_assets.lib.settings import SettingError, Settings

DEMO_SUFFIX = "_demo"


def demo_settings(settings: Settings, declared: Sequence[Collection]) -> Settings:
    """The settings of the demo store. A table collection named `demo` would keep its tables in
    the same schema (`<schema>_<name>`), so the demo refuses to run beside one."""
    schema = settings.schema + DEMO_SUFFIX
    clash = [c for c in declared if c.name == DEMO_SUFFIX[1:]]
    if clash:
        raise CollectionError(
            f"{clash[0].path}: a collection named 'demo' keeps its store in schema {schema}, "
            "the demo's own: rename the collection to run the demo"
        )
    if len(schema) > 63:
        raise SettingError(
            f"EMBED_ASSETS_SCHEMA: {settings.schema!r} is too long for the demo's schema "
            f"{schema} (PostgreSQL's names have at most 63 characters)"
        )
    return dataclasses.replace(settings, schema=schema)


def repositories_collection(declared: Sequence[Collection]) -> Collection:
    """The collection the demo fills: the project's repositories one."""
    for collection in declared:
        if collection.source.get("kind") == "repositories":
            return collection
    raise CollectionError("the demo fills a repositories collection, and the project has none")


def demo_store(settings: Settings, declared: Sequence[Collection]) -> tuple[Collection, Settings]:
    """The collection the demo fills and the settings of its store."""
    return repositories_collection(declared), demo_settings(settings, declared)
