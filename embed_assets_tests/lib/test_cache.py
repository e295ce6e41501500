"""The embedding cache over the real database: shared, bounded, and never re-paying a vector."""

import numpy as np
import pytest

from embed_assets.cli import main
from embed_assets.lib import pipeline
from embed_assets.lib.cache import LRU
from embed_assets_tests.helpers import ALL_TIME, RecordingProvider, source_row
from embed_assets_tests.lib.test_pipeline import materialise, seed, vectors


def test_lru_keeps_the_most_recently_used():
    lru = LRU(max_entries=2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    lru.put("c", 3)
    assert (lru.get("a"), lru.get("b"), lru.get("c")) == (1, None, 3)


def test_cached_texts_are_never_sent_again(store):
    seed(store)
    first = RecordingProvider()
    _, chunks, embeddings = materialise(store, first)
    assert embeddings["cache_misses"] == len(first.sent) == chunks["row_count"]
    before = vectors(store, first)
    # Lose every vector (as when a space is dropped and rebuilt): the cache still has them.
    store.execute(f'TRUNCATE "{store.schema}"."embeddings_{embeddings["space"]}"')
    again = RecordingProvider()
    _, _, embeddings = materialise(store, again)
    assert again.sent == []
    assert embeddings["cache_hits"] == embeddings["embedded"] == chunks["row_count"]
    assert {k: v[0] for k, v in vectors(store, again).items()} == {
        k: v[0] for k, v in before.items()
    }


def test_hits_from_the_table_are_staged_in_the_server_and_marked_used(store):
    """Another process (nothing in its memory): the vectors come from the cache table inside the
    server, equal to the ones first stored, and their entries are marked used again."""
    from embed_assets.lib.cache import MEMORY

    seed(store)
    _, chunks, embeddings = materialise(store, RecordingProvider())
    table = f'"{store.schema}"."embeddings_{embeddings["space"]}"'
    stored = store.execute(f"SELECT chunk_id, embedding::text FROM {table} ORDER BY 1").fetchall()
    store.execute(f"TRUNCATE {table}")
    store.execute(
        f"UPDATE \"{store.schema}\".embedding_cache SET used_at = now() - interval '3 days'"
    )
    MEMORY.clear()
    again = RecordingProvider()
    _, _, embeddings = materialise(store, again)
    assert again.sent == [] and embeddings["cache_hits"] == chunks["row_count"]
    assert (
        store.execute(f"SELECT chunk_id, embedding::text FROM {table} ORDER BY 1").fetchall()
        == stored
    )
    assert (
        store.execute(
            f'SELECT count(*) FROM "{store.schema}".embedding_cache '
            "WHERE used_at < now() - interval '1 day'"
        ).fetchone()[0]
        == 0
    )


def test_the_offline_provider_does_not_use_the_cache(store):
    """Hashing a text is cheaper than caching its vector: nothing is stored, looked up or counted,
    and a lost vector is simply computed again."""
    from embed_assets.lib.providers.offline import OfflineHashingProvider

    seed(store)
    provider = OfflineHashingProvider(dimensions=64)
    _, chunks, embeddings = materialise(store, provider)
    assert embeddings["cache_used"] is False
    assert embeddings["cache_hits"] == embeddings["cache_misses"] == 0
    assert store.cache_stats()["entries"] == 0
    store.execute(f'TRUNCATE "{store.schema}"."embeddings_{embeddings["space"]}"')
    _, _, again = materialise(store, provider)
    assert again["embedded"] == chunks["row_count"] and store.cache_stats()["entries"] == 0


def test_a_failed_run_keeps_the_vectors_it_paid_for(store, monkeypatch):
    monkeypatch.setattr(pipeline, "PAGE_SIZE", 2)
    store.upsert_source([source_row(f"o/r{i}", f"repository number {i}") for i in range(6)])

    class FailsOnSecondCall(RecordingProvider):
        def embed(self, texts):
            if len(self.sent) >= 2:
                raise ConnectionError("provider went away")
            return super().embed(texts)

    failing = FailsOnSecondCall()
    pipeline.sync_rows(store, *ALL_TIME)
    pipeline.sync_chunks(store, *ALL_TIME, 400, 80)
    with pytest.raises(ConnectionError):
        pipeline.sync_embeddings(store, *ALL_TIME, failing)
    assert store.status(store.active_space())["embeddings"] == 0  # nothing half-written
    healthy = RecordingProvider()
    result = pipeline.sync_embeddings(store, *ALL_TIME, healthy)
    assert result["embedded"] == 6 and result["cache_hits"] == 2
    assert len(healthy.sent) == 4 and not set(healthy.sent) & set(failing.sent)


def test_the_cache_is_bounded_by_entries_and_by_age(store):
    store.upsert_source([source_row(f"o/r{i}", f"repository number {i}") for i in range(5)])
    provider = RecordingProvider()
    pipeline.sync_rows(store, *ALL_TIME)
    pipeline.sync_chunks(store, *ALL_TIME, 400, 80)
    result = pipeline.sync_embeddings(store, *ALL_TIME, provider, cache_max_entries=3)
    assert result["cache_evicted"] == 2 and store.cache_stats()["entries"] == 3
    store.execute(
        f"UPDATE \"{store.schema}\".embedding_cache SET used_at = now() - interval '40 days'"
    )
    assert store.cache_evict(max_entries=100, max_age_days=30) == 3
    assert store.cache_stats()["entries"] == 0


def test_cache_stats_and_clear_from_the_cli(settings, store, capsys):
    import json

    seed(store)
    materialise(store, RecordingProvider())
    materialise(store, RecordingProvider())  # nothing pending: the cache is not even asked
    assert main(["cache", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert set(stats) == {"entries", "hits", "misses", "hit_rate"}
    assert stats["entries"] == stats["misses"] > 0 and stats["hits"] == 0
    assert main(["cache", "clear", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": stats["entries"]}
    assert main(["cache", "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "entries": 0,
        "hits": 0,
        "misses": 0,
        "hit_rate": 0.0,
    }
    assert np.isfinite(stats["hit_rate"])
