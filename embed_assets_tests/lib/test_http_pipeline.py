"""The real pipeline over the real database, embedding through an HTTP provider and a local
server."""

from dataclasses import replace

import numpy as np
import pytest

from embed_assets.lib import pipeline
from embed_assets.lib.providers import ProviderError, build_provider, space_name
from embed_assets.lib.settings import Settings
from embed_assets.lib.store import open_store
from embed_assets_tests.helpers import ALL_TIME, source_row
from embed_assets_tests.provider_servers import FakeEmbeddingServer

README = "\n\n".join(
    f"Section {p}. " + " ".join(f"Sentence {s} of part {p} says something." for s in range(6))
    for p in range(4)
)
ROWS = [
    source_row(
        f"acme/tool-{i}",
        f"Tool {i} for {topic}",
        when=f"20{10 + i % 12}-03-04",
        readme=README if i % 5 == 0 else None,
    )
    for i, topic in enumerate(["vector search", "web apps", "games", "compilers", "genomics"] * 6)
]


def make(server: FakeEmbeddingServer, **settings):
    return build_provider(
        Settings(
            **{
                "provider": "openai_compatible",
                "base_url": server.openai_url,
                "model": "fake-embedder",
                "dimensions": server.dimensions,
                "batch_size": 4,
                "max_concurrency": 4,
                "backoff_base": 0.001,
                "backoff_max": 0.005,
                "max_attempts": 10,
                **settings,
            }
        )
    )


def materialise(store, provider) -> dict:
    pipeline.sync_rows(store, *ALL_TIME)
    pipeline.sync_chunks(store, *ALL_TIME, 400, 80)
    return pipeline.sync_embeddings(store, *ALL_TIME, provider)


def stored_vectors(store, provider) -> dict[str, bytes]:
    table = f"embeddings_{space_name(provider.model, provider.dimensions)}"
    return {
        chunk_id: np.asarray(vector, dtype=np.float32).tobytes()
        for chunk_id, vector in store.execute(
            f'SELECT chunk_id, embedding FROM "{store.schema}"."{table}"'
        )
    }


def test_a_run_with_faults_ends_with_exactly_the_state_of_a_clean_run(store, settings):
    store.upsert_source(ROWS)
    with FakeEmbeddingServer() as clean, make(clean) as provider:
        report = materialise(store, provider)
        expected = stored_vectors(store, provider)
        texts = [t for (t,) in store.execute(f'SELECT text FROM "{store.schema}".chunks')]
        assert len(texts) > len(ROWS)  # the READMEs were split
        assert sorted(clean.texts_embedded()) == sorted(texts)  # each text once
        assert len(clean.requests) == -(-len(texts) // 4)
        assert (report["embedded"], report["refused"]) == (len(texts), 0)
        materialise(store, provider)
        assert len(clean.requests) == -(-len(texts) // 4)  # nothing left to send
    faulty_settings = replace(settings, schema=f"{settings.schema}_faults")
    with open_store(settings.database_url, faulty_settings) as other:
        try:
            other.upsert_source(ROWS)
            with (
                FakeEmbeddingServer(
                    fault_rate=0.2, random_faults=["429", "500", "503"], seed=3
                ) as faulty,
                make(faulty, batch_size=2) as provider,
            ):
                report = materialise(other, provider)
                assert stored_vectors(other, provider) == expected
                assert sorted(faulty.texts_embedded()) == sorted(texts)
                faults = [r.fault for r in faulty.requests if r.fault]
                assert len(faults) >= 3 and provider.metrics.snapshot()["retries"] == len(faults)
                assert other.status(other.active_space())["pending"] == 0
        finally:
            other.drop_schema()


def test_a_vector_that_stays_nan_is_recorded_and_pending_until_a_later_run_fills_it(store):
    store.upsert_source(ROWS[:4] + [source_row("acme/broken", "A text that comes back NAN-ME")])
    with FakeEmbeddingServer() as server, make(server) as provider:
        report = materialise(store, provider)
        assert report["refused"] == 1
        assert report["refused_examples"] == [
            "acme/broken#0: vector refused: not finite (NaN or inf)"
        ]
        assert store.status(store.active_space())["pending"] == 1
    with FakeEmbeddingServer(nan_marker="no longer broken") as healed, make(healed) as provider:
        report = materialise(store, provider)
        assert (report["embedded"], report["refused"]) == (1, 0)
        assert [r.texts for r in healed.requests] == [
            ["acme/broken\nA text that comes back NAN-ME\nLanguage: Python"]
        ]
        assert store.status(store.active_space())["pending"] == 0


def test_a_provider_that_keeps_failing_fails_the_run_and_stores_nothing(store):
    store.upsert_source(ROWS)
    with (
        FakeEmbeddingServer(fault_rate=1.0, random_faults=["503"]) as down,
        make(down, breaker_threshold=5) as provider,
    ):
        with pytest.raises(ProviderError, match="failed 5 times in a row .*circuit open"):
            materialise(store, provider)
    assert store.status(store.active_space())["embeddings"] == 0
