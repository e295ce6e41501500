"""Pseudo-relevance feedback in the vector arm, and the hybrid search's text arm on a second
connection, over the real database and the offline provider."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets.lib.store import open_store
from embed_assets.lib.store.search import FEEDBACK_ROWS, FEEDBACK_SHARE, FEEDBACK_WEIGHT
from embed_assets_tests.helpers import source_row
from embed_assets_tests.lib.test_pipeline import materialise

TERMINALS = [
    source_row("t/one", "terminal emulator, gpu accelerated, with tabs, splits and ligatures"),
    source_row("t/two", "a terminal emulator that is gpu accelerated, with tabs and splits"),
    source_row("t/three", "fast terminal emulator: gpu accelerated, ligatures, splits, tabs"),
    # About what the three are about, without the query's words:
    source_row("t/four", "gpu accelerated text renderer with tabs, splits and ligatures"),
    # The query's first word, about something else:
    source_row("t/five", "terminal colour schemes collection for shells"),
]


def embedded(store) -> tuple:
    """The terminal rows embedded offline: (the provider, the space, "terminal emulator"'s
    vector)."""
    store.upsert_source(TERMINALS)
    provider = OfflineHashingProvider()
    materialise(store, provider)
    return provider, store.active_space(), provider.embed(["terminal emulator"])[0]


def ranks(hits) -> dict[str, int]:
    return {hit[0]: rank for rank, hit in enumerate(hits)}


def test_feedback_lifts_rows_like_the_best_ones_over_rows_sharing_a_query_word(store):
    provider, space, query = embedded(store)

    plain = store.search(space, query, 5)
    fed = store.search(space, query, 5, feedback=True)
    assert {h[0] for h in plain[:3]} == {"t/one", "t/two", "t/three"}
    assert ranks(plain)["t/five"] < ranks(plain)["t/four"]
    assert ranks(fed)["t/four"] < ranks(fed)["t/five"]
    # The scores stay each row's similarity to the query itself.
    assert {h[0]: round(h[1], 6) for h in fed} == {h[0]: round(h[1], 6) for h in plain}

    # The order is the cosine to the query moved towards its best rows, computed here apart.
    chunks = store.execute(f'SELECT key, text FROM "{store.schema}".chunks').fetchall()
    vectors = dict(zip([c[0] for c in chunks], provider.embed([c[1] for c in chunks]), strict=True))
    best = [h[0] for h in plain if h[1] >= FEEDBACK_SHARE * plain[0][1]][:FEEDBACK_ROWS]
    moved = query / np.linalg.norm(query)
    moved = moved + FEEDBACK_WEIGHT * np.mean([vectors[key] for key in best], axis=0)
    expected = sorted(vectors, key=lambda key: -float(vectors[key] @ moved))
    assert [h[0] for h in fed] == expected


def test_the_text_arm_on_a_second_connection_gives_the_same_hits(settings, store):
    store.upsert_source(TERMINALS)
    provider = OfflineHashingProvider()
    materialise(store, provider)
    space = store.active_space()
    query = "gpu terminal"
    vector = provider.embed([query])[0]
    alone = store.hybrid_search(space, vector, query, 4, feedback=True)
    with open_store(settings.database_url, settings) as other, ThreadPoolExecutor(1) as arm:
        beside = store.hybrid_search(space, vector, query, 4, feedback=True, words=(other, arm))
        assert other.conn.info.backend_pid != store.conn.info.backend_pid
    assert beside == alone and len(alone) == 4


def test_a_similarity_cutoff_applies_before_the_feedback_ranks(store):
    _, space, query = embedded(store)
    plain = store.search(space, query, 5)
    assert plain[3][0] == "t/five"  # the emulators, then the row with the word "terminal"
    floor = plain[3][1]  # four rows qualify, t/four (lifted by the feedback) does not
    kept = store.search(space, query, 4, feedback=True, min_similarity=floor)
    # Cut after the ranking, t/four would take fourth place, then fall: three rows, not four.
    assert {h[0] for h in kept} == {"t/one", "t/two", "t/three", "t/five"}
    assert all(h[1] >= floor for h in kept)
