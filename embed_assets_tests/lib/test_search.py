"""Search through the HNSW index, with filters and the exact fallback, over the real database."""

from itertools import pairwise

from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets_tests.helpers import RecordingProvider, source_row
from embed_assets_tests.lib.test_pipeline import materialise


def test_a_selective_filter_still_finds_k_results_exactly(store):
    rows = [
        source_row(f"web/app{i}", f"web framework for apps number {i}", language="Python")
        for i in range(300)
    ]
    rows += [
        source_row("zig/a", "an allocator", language="Zig"),
        source_row("zig/b", "a build system", language="Zig"),
    ]
    store.upsert_source(rows)
    provider = RecordingProvider(dimensions=64)
    materialise(store, provider)
    space = store.active_space()
    query = OfflineHashingProvider(64).embed(["web framework for apps"])[0]

    hits = store.search(space, query, 2, language="zig")  # far from the query: not in the ANN top
    assert sorted(h[0] for h in hits) == ["zig/a", "zig/b"]

    approximate = store.search(space, query, 10)
    exact = store.search(space, query, 10, exact=True)
    assert [h[0] for h in approximate] == [h[0] for h in exact]
    assert all(a[1] >= b[1] for a, b in pairwise(exact))


def test_search_keeps_its_connection_and_recovers_when_the_server_drops_it(settings, store):
    from embed_assets.lib import search as search_module

    store.upsert_source(
        [
            source_row("acme/vector-db", "A vector database for similarity search"),
            source_row("acme/game", "A 3D game engine"),
        ]
    )
    materialise(store, OfflineHashingProvider())  # the configured (default) provider
    first = search_module.search("vector database", 1, settings=settings)

    def kept():
        """The store this thread keeps for the settings (of their one collection)."""
        [session] = [v for k, v in search_module._kept.sessions.items() if k[0] == settings]
        return session.store

    pid = kept().conn.info.backend_pid
    assert search_module.search("game engine", 1, settings=settings)[0]["full_name"] == "acme/game"
    assert kept().conn.info.backend_pid == pid  # reused
    store.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert search_module.search("vector database", 1, settings=settings) == first
    assert kept().conn.info.backend_pid != pid
    search_module.forget(settings)
    assert not [k for k in search_module._kept.sessions if k[0] == settings]
