"""`embed_assets.EmbeddingCollection`: a collection declared in a `defs.yaml`, with no Python.

```yaml
type: embed_assets.EmbeddingCollection
attributes:
  name: repositories
  source: {kind: repositories}
```

Each collection gets its own prefixed assets (`<name>/rows` → `<name>/chunks` →
`<name>/embeddings` → `<name>/cluster_index`), checks, sensor and schedules; the resources (the
embedding cache, the provider pool) and the alert sensor are the code location's, shared.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import dagster as dg
from pydantic import BaseModel, ConfigDict

from embed_assets.components.assets import collection_assets
from embed_assets.components.checks import collection_checks
from embed_assets.components.schedules import cluster_index_schedules
from embed_assets.components.sensors import collection_sensors
from embed_assets.lib.settings import Settings

# A collection's name is an asset key part and part of SQL names: letters, digits, underscores.
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
# The source kinds this release implements, and what each fixes of a declaration.
SOURCE_KINDS = {"repositories": {"key": "full_name", "time_column": "created_at"}}

# The settings of the build in progress (`build_definitions(settings)`); unset, the environment's,
# read then: never at import, so that a developer's shell cannot leak into a test's definitions.
_build_settings: ContextVar[Settings | None] = ContextVar("embed_assets_settings", default=None)


def build_settings() -> Settings:
    return _build_settings.get() or Settings.from_env()


@contextmanager
def building_with(settings: Settings) -> Iterator[None]:
    token = _build_settings.set(settings)
    try:
        yield
    finally:
        _build_settings.reset(token)


class DeclarationError(ValueError):
    """A collection's declaration cannot be used; the message names the file and the field."""


class CollectionSource(BaseModel):
    """Where a collection's rows come from: `kind`, and that kind's own fields."""

    model_config = ConfigDict(extra="allow")
    kind: str


class EmbeddingCollection(dg.Component, dg.Resolvable, dg.Model):
    """One source of text kept in sync with its embeddings and cluster index."""

    name: str
    source: CollectionSource
    key: str | list[str] | None = None
    time_column: str | None = None
    text: str | None = None
    metadata: list[str] = []
    group_by: str | None = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        self.validate_declaration(context.path / "defs.yaml")
        return collection_definitions(self.name, build_settings())

    def validate_declaration(self, path: Path) -> None:
        def fail(field: str, problem: str) -> None:
            raise DeclarationError(f"{path}: {field}: {problem}")

        if not _NAME.match(self.name):
            fail(
                "name",
                f"{self.name!r} is not a valid collection name (an asset key part: lower-case "
                "letters, digits and underscores, starting with a letter, at most 41)",
            )
        fixed = SOURCE_KINDS.get(self.source.kind)
        if fixed is None:
            fail(
                "source.kind",
                f"unknown source kind {self.source.kind!r} (known: {', '.join(SOURCE_KINDS)})",
            )
        for field, value in fixed.items():
            declared = getattr(self, field)
            if declared is not None and declared != value:
                fail(field, f"a {self.source.kind} collection's {field} is {value!r}")


def collection_definitions(name: str, settings: Settings) -> dg.Definitions:
    """A collection's assets, checks, sensor and schedules."""
    assets = collection_assets(name, settings)
    automation, full_recluster, weekly_recluster = cluster_index_schedules(assets)
    new_rows, daily, weekly = collection_sensors(assets)
    return dg.Definitions(
        assets=[assets.rows, assets.chunks, assets.embeddings, assets.cluster_index],
        asset_checks=collection_checks(assets),
        jobs=[full_recluster],
        schedules=[daily, weekly, weekly_recluster],
        sensors=[new_rows, automation],
    )
