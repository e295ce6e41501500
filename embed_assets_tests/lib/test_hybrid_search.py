"""Hybrid, vector and full-text search over the real database: k distinct rows however many chunks
one row has, words found that vectors miss, filters on both arms, scores and the cutoff."""

import random

import pytest

from embed_assets.lib import pipeline
from embed_assets.lib import search as search_module
from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets.lib.store import MODES
from embed_assets_tests.helpers import ALL_TIME, source_row

WORDS = "fine library tool code data fast small simple parser server client async".split()
SHORT_ROWS = [
    source_row("ok/one", "A fine library", language="Python"),
    source_row("ok/two", "Bobby tables: Robert'); DROP TABLE students;-- sanitised", language="Go"),
    source_row("ok/three", "A terminal emulator written in Rust", language="Rust"),
    source_row("ok/four", "Static site generator with themes", language="Go"),
]


def huge_row() -> tuple:
    """A 1 MB description of sentences over WORDS (the short rows' words among them)."""
    rng = random.Random(0)
    sentences, size = [], 0
    while size < 1_000_000:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize()
        sentences.append(sentence + ".")
        size += len(sentence) + 2
    return source_row("big/huge", " ".join(sentences), language="Python")


def embed(store, max_chunks: int) -> dict:
    """Rows, chunks of 1,500 characters (the default) with 200 of overlap, offline vectors:
    the chunks step's report."""
    pipeline.sync_rows(store, *ALL_TIME)
    chunked = pipeline.sync_chunks(store, *ALL_TIME, 1500, 200, max_chunks=max_chunks)
    pipeline.sync_embeddings(store, *ALL_TIME, OfflineHashingProvider())
    return chunked


def long_rows() -> list[tuple]:
    """Eight rows of about 1,300 characters over WORDS, one with the word "zeppelin" in it."""
    rng = random.Random(1)

    def filler() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(100))

    return [
        source_row(f"long/r{i}", f"{filler()} {'zeppelin' if i == 3 else 'and'} {filler()}")
        for i in range(8)
    ]


ROW_COUNT = len(SHORT_ROWS) + 1 + 8


@pytest.fixture
def searched(settings, store):
    """The short rows, the long ones and the huge one, chunked at the default 1500 characters and
    embedded."""
    store.upsert_source([*SHORT_ROWS, huge_row(), *long_rows()])
    embed(store, max_chunks=1000)  # all of the huge row's chunks (the default keeps 200)
    chunks = store.execute(
        f'SELECT count(*) FROM "{store.schema}".chunks WHERE key = %s', ("big/huge",)
    ).fetchone()[0]
    assert chunks > 600  # hundreds of chunks of one row
    # The word statistics text search picks its words by, as autovacuum would gather them (at
    # a moment of its choosing: here, before any search, for the same results every time).
    store.execute(f'ANALYZE "{store.schema}".chunks')

    def run(query: str, k: int = 10, **options) -> list[dict]:
        return search_module.search(query, k, settings=settings, **options)

    yield run
    search_module.forget(settings)


def keys(hits: list[dict]) -> list[str]:
    return [hit["key"] for hit in hits]


def test_every_k_returns_that_many_distinct_rows(searched):
    for mode in ("hybrid", "vector"):
        for k in range(1, ROW_COUNT + 1):
            found = keys(searched("fine library", k, mode=mode))
            assert len(found) == k and len(set(found)) == k, (mode, k, found)
        # Asked for more than there are: every row, once.
        every = keys(searched("fine library", 50, mode=mode))
        assert len(every) == len(set(every)) == ROW_COUNT


def test_a_short_rows_own_words_rank_it_first(searched):
    assert keys(searched("A fine library"))[0] == "ok/one"
    assert keys(searched("fine library"))[0] == "ok/one"
    assert keys(searched("Robert DROP TABLE"))[0] == "ok/two"
    top = searched("terminal emulator written in rust")[0]
    assert (top["key"], top["full_name"]) == ("ok/three", "ok/three")
    assert top["metadata"] == {
        "language": "Rust",
        "stars": 10,
        "url": "https://github.com/ok/three",
    }


def test_text_mode_finds_exact_words_and_only_rows_holding_them(searched):
    found = searched("students", mode="text")
    assert keys(found) == ["ok/two"]  # stemmed: "students" -> student
    assert 0 < found[0]["score"] < 1
    assert keys(searched("emulators", mode="text")) == ["ok/three"]
    assert searched("dirigible", mode="text") == []
    # One word of a short row among the hundreds of chunks of the huge one that hold it too.
    assert "ok/one" in keys(searched("fine", 5, mode="text"))


def test_text_search_leaves_out_words_too_common_to_rank_and_caps_its_matches(searched, store):
    # "fine" is in 700 of the 730 chunks: with room to rank 100 matches, only the rare word
    # is searched for; with room for 1,000, both are.
    assert [h[0] for h in store.text_search("fine zeppelin", 10, max_matches=100)] == ["long/r3"]
    assert len(store.text_search("fine zeppelin", 10, max_matches=1000)) == 10
    # Every word too common: the chunks holding all of them ("fine" and "library": many).
    both = store.text_search("fine library", 3, max_matches=100)
    assert [h[0] for h in both][0] == "ok/one" and len(both) == 3
    assert store.text_search("the and of", 3) == []  # stop words only: nothing to search


def test_vector_mode_misses_a_word_that_text_and_hybrid_find(searched):
    """One word in a long text: in a hashing vector of 384 dimensions it weighs little against
    the 200 others and collides with some; the word index holds it exactly."""
    assert keys(searched("zeppelin", 1, mode="vector")) != ["long/r3"]
    assert keys(searched("zeppelin", 5, mode="text")) == ["long/r3"]
    assert keys(searched("zeppelin", 5))[0] == "long/r3"


def test_filters_apply_to_both_arms(searched):
    for mode in MODES:
        go = searched("fine library table", mode=mode, language="go")
        assert go and set(keys(go)) <= {"ok/two", "ok/four"}, mode
        rust = searched("terminal", mode=mode, where={"language": "Rust"})
        assert keys(rust) == ["ok/three"], mode
    assert searched("library", mode="text", min_stars=11) == []


def test_min_score_drops_weak_hits_on_each_modes_scale(searched):
    # Vector scores are the similarity to the query itself, ranked by feedback: the cutoff keeps
    # the hits that close to the query, in the order they had.
    every = searched("A fine library", 5, mode="vector")
    floor = sorted(hit["score"] for hit in every)[-2]
    kept = searched("A fine library", 5, mode="vector", min_score=floor)
    assert keys(kept) == [hit["key"] for hit in every if hit["score"] >= floor]
    assert len(kept) == 2
    words = searched("fine", 5, mode="text")
    assert keys(searched("fine", 5, mode="text", min_score=words[0]["score"])) == keys(words)[:1]
    hybrid = searched("A fine library", 5)
    assert hybrid[0]["score"] == pytest.approx(1.0)  # first in both arms
    assert all(0 < hit["score"] <= 1 for hit in hybrid)
    # Hybrid: a row far in meaning is dropped unless it holds the words ("zeppelin": only
    # long/r3 does, and the vectors find nothing that close).
    assert keys(searched("zeppelin", 5, min_score=0.5)) == ["long/r3"]
    assert len(searched("zeppelin", 5)) == 5


@pytest.mark.parametrize(
    "query, k, mode, message",
    [
        ("", 5, "hybrid", "the query is empty"),
        ("  \t", 5, "hybrid", "the query is empty"),
        ("x", 0, "hybrid", "k must be between 1 and 100"),
        ("x", 101, "vector", "k must be between 1 and 100"),
        ("x", 5, "fuzzy", "mode must be one of hybrid, vector, text"),
    ],
)
def test_bad_requests_are_refused_before_any_work(settings, query, k, mode, message):
    with pytest.raises(ValueError, match=message):
        search_module.search(query, k, mode=mode, settings=settings)


def test_a_v8_store_upgrades_in_place_with_its_chunks_words_filled(settings, store):
    from embed_assets.lib.store import open_store

    store.upsert_source(SHORT_ROWS)
    embed(store, max_chunks=200)
    # Back to v8's shape: no words column, no index, the old mark.
    store.execute(f'ALTER TABLE "{store.schema}".chunks DROP COLUMN words')
    store.execute(f"COMMENT ON SCHEMA \"{store.schema}\" IS 'embed_assets schema v8'")
    from embed_assets.lib.store.base import _ensured

    _ensured.clear()
    with open_store(settings.database_url, settings) as upgraded:
        filled = upgraded.execute(
            f'SELECT count(*) FILTER (WHERE words IS NOT NULL), count(*) FROM "{store.schema}".'
            "chunks"
        ).fetchone()
        assert filled == (4, 4)
        assert keys([{"key": h[0]} for h in upgraded.text_search("static generator", 3)]) == [
            "ok/four"
        ]
        index = upgraded.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = 'chunks_words'",
            (store.schema,),
        ).fetchone()
        assert index and "gin" in index[0]


def test_a_rows_chunks_are_bounded_and_the_cut_is_reported(store):
    store.upsert_source([*SHORT_ROWS, huge_row()])
    chunked = embed(store, max_chunks=50)
    assert (chunked["rows_truncated"], chunked["rows_truncated_examples"]) == (1, ["big/huge"])
    counts = dict(
        store.execute(f'SELECT key, count(*) FROM "{store.schema}".chunks GROUP BY key').fetchall()
    )
    assert counts == {"big/huge": 50, "ok/one": 1, "ok/two": 1, "ok/three": 1, "ok/four": 1}
    # A larger bound is another chunking: the row is chunked again, further.
    again = embed(store, max_chunks=60)
    assert again["rows_truncated"] == 1 and again["rows_rechunked"] == 5
    assert store.execute(
        f'SELECT max(position) FROM "{store.schema}".chunks WHERE key = %s', ("big/huge",)
    ).fetchone() == (59,)
