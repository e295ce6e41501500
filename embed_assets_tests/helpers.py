"""Small builders shared by the tests."""

from datetime import UTC, datetime

import dagster as dg
import numpy as np

from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets.lib.store import SOURCE_COLUMNS

ALL_TIME = (datetime(2008, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
COLLECTION = "repositories"  # the code location's collection


def asset_key(asset: str) -> dg.AssetKey:
    """The key of the repositories collection's `asset` (rows, chunks, embeddings,
    cluster_index)."""
    return dg.AssetKey([COLLECTION, asset])


def node(asset: str) -> str:
    """The name of that asset's step (what `asset_materializations_for_node` takes)."""
    return asset_key(asset).to_python_identifier()


def source_row(
    full_name: str, description: str = "", *, when: str = "2020-05-17", **values
) -> tuple:
    """A row for Store.upsert_source, in SOURCE_COLUMNS order."""
    record = {
        "full_name": full_name,
        "description": description or f"{full_name} does things",
        "language": "Python",
        "stars": 10,
        "topics": [],
        "url": None,
        "readme": None,
        "created_at": datetime.fromisoformat(when).replace(tzinfo=UTC),
    }
    record.update(values)
    return tuple(record[c] for c in SOURCE_COLUMNS)


class RecordingProvider:
    """The offline provider, recording every text it is asked to embed; texts containing a
    poison word come back as NaN or zero vectors, as a broken model server might send them."""

    name = "recording"
    cache_vectors = True  # it stands for a provider whose vectors cost a request

    def __init__(self, dimensions: int = 64, poison: dict[str, str] | None = None):
        self.inner = OfflineHashingProvider(dimensions=dimensions)
        self.model = self.inner.model
        self.dimensions = dimensions
        self.poison = poison or {}
        self.sent: list[str] = []

    def embed(self, texts):
        self.sent.extend(texts)
        vectors = self.inner.embed(texts)
        for i, text in enumerate(texts):
            for word, kind in self.poison.items():
                if word in text:
                    vectors[i] = np.nan if kind == "nan" else 0.0
        return vectors
