"""`embed_assets.EmbeddingCollection`: a collection declared in a `defs.yaml`, with no Python.

```yaml
type: embed_assets.EmbeddingCollection
attributes:
  name: support_tickets
  source: {kind: table, table: public.support_tickets}   # or {kind: repositories}
  key: id                                                # a column, or a list of columns
  time_column: created_at                                # omit for no partitions
  text: "{subject}\n\n{body}"
  metadata: [customer, priority]
  group_by: customer
```

The declaration is checked when definitions are built (`embed_assets.lib.collections`), against
the database for a table, with errors naming the file and the field.

Each collection gets its own prefixed assets (`<name>/rows` → `<name>/chunks` →
`<name>/embeddings` → `<name>/cluster_index`), checks, sensor and schedules; the resources (the
embedding cache, the provider pool) and the alert sensor are the code location's, shared.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import dagster as dg
from pydantic import BaseModel, ConfigDict

from embed_assets.components.assets import collection_assets
from embed_assets.components.checks import collection_checks
from embed_assets.components.schedules import cluster_index_schedules
from embed_assets.components.sensors import collection_sensors
from embed_assets.defs.resources import shared_definitions
from embed_assets.lib.collections import Collection
from embed_assets.lib.settings import Settings
from embed_assets.lib.sources.base import SourceKind
from embed_assets.lib.sources.repositories import REPOSITORIES

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
        settings = build_settings()
        collection = Collection(
            name=self.name,
            source=self.source.model_dump(),
            path=context.path / "defs.yaml",
            key=self.key,
            time_column=self.time_column,
            text=self.text,
            metadata=self.metadata,
            group_by=self.group_by,
        )
        # With the shared resources, so that a user's project declaring collections needs no
        # Python; equal settings give the same objects, which Dagster merges.
        return dg.Definitions.merge(
            collection_definitions(
                self.name, settings, collection.source_kind(settings), collection.by_month
            ),
            shared_definitions(settings),
        )


def sync_job_name(collection: str) -> str:
    """The job `embed-assets sync` runs: a readable target in the runs list."""
    return f"{collection}_sync"


def collection_definitions(
    name: str, settings: Settings, source: SourceKind = REPOSITORIES, by_month: bool = True
) -> dg.Definitions:
    """A collection's assets, checks, sensor and schedules."""
    assets = collection_assets(name, settings, source, by_month)
    automation, full_recluster, weekly_recluster = cluster_index_schedules(assets)
    new_rows, daily, weekly = collection_sensors(assets)
    every_asset = [assets.rows, assets.chunks, assets.embeddings, assets.cluster_index]
    sync_job = dg.define_asset_job(
        sync_job_name(name),
        selection=dg.AssetSelection.assets(*every_asset),
        description=f"What `embed-assets sync --collection {name}` runs: the changed "
        "partitions of the collection and its cluster index",
    )
    return dg.Definitions(
        assets=every_asset,
        asset_checks=collection_checks(assets),
        jobs=[full_recluster, sync_job],
        schedules=[daily, weekly, weekly_recluster],
        sensors=[new_rows, automation],
    )
