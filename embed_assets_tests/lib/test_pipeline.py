"""The incremental rules, end to end over the real database, without Dagster."""

from embed_assets.lib import pipeline
from embed_assets.lib.providers import space_name
from embed_assets.lib.store import Space
from embed_assets_tests.helpers import ALL_TIME, RecordingProvider, source_row


def materialise(store, provider, window=ALL_TIME, max_chars=400, overlap=80):
    return (
        pipeline.sync_rows(store, *window),
        pipeline.sync_chunks(store, *window, max_chars, overlap),
        pipeline.sync_embeddings(store, *window, provider),
    )


def vectors(store, provider):
    table = f"embeddings_{space_name(provider.model, provider.dimensions)}"
    return {
        row[0]: (row[1], row[2])
        for row in store.execute(
            f'SELECT chunk_id, content_hash, embedded_at FROM "{store.schema}"."{table}"'
        ).fetchall()
    }


def long_readme(word: str, paragraphs: int = 6) -> str:
    return "\n\n".join(
        f"{word} paragraph {p}. "
        + " ".join(f"The {word} sentence {s} explains part {p}." for s in range(8))
        for p in range(paragraphs)
    )


def seed(store):
    store.upsert_source(
        [
            source_row("acme/vector-db", "A vector database for similarity search"),
            source_row("acme/game", "A 3D game engine", when="2021-02-03"),
            source_row("acme/docs", "Documentation site", readme=long_readme("docs")),
        ]
    )


def test_first_materialisation_embeds_every_chunk(store):
    seed(store)
    provider = RecordingProvider()
    repos, chunks, embeddings = materialise(store, provider)
    assert (repos["added"], repos["rejected"]) == (3, 0)
    assert chunks["added"] == chunks["row_count"] > 3  # the README was split
    assert embeddings["embedded"] == chunks["row_count"]
    assert len(provider.sent) == chunks["row_count"]
    assert (
        embeddings["index_rebuilt"]
        and 0 < embeddings["index_build_seconds"] <= embeddings["write_seconds"]
    )
    status = store.status(store.active_space())
    assert status == {
        "source_rows": 3,
        "repositories": 3,
        "rows": 3,
        "chunks": chunks["row_count"],
        "embeddings": chunks["row_count"],
        "pending": 0,
    }


def test_again_with_no_change_embeds_nothing_and_writes_nothing(store):
    seed(store)
    provider = RecordingProvider()
    materialise(store, provider)
    before = vectors(store, provider)
    provider.sent.clear()
    repos, chunks, embeddings = materialise(store, provider)
    assert provider.sent == []
    assert (repos["added"], repos["updated"], repos["deleted"]) == (0, 0, 0)
    assert (chunks["added"], chunks["updated"], chunks["deleted"]) == (0, 0, 0)
    assert (embeddings["embedded"], embeddings["deleted"]) == (0, 0)
    assert not embeddings["index_rebuilt"] and embeddings["index_build_seconds"] == 0
    assert vectors(store, provider) == before  # not even embedded_at moved


def test_changed_description_re_embeds_exactly_that_repositorys_chunks(store):
    seed(store)
    provider = RecordingProvider()
    materialise(store, provider)
    before = vectors(store, provider)
    provider.sent.clear()
    store.upsert_source(
        [source_row("acme/game", "A 2D game engine with physics", when="2021-02-03")]
    )
    repos, chunks, embeddings = materialise(store, provider)
    assert repos["updated"] == 1 and chunks["updated"] == 1
    assert embeddings["embedded"] == 1 and len(provider.sent) == 1
    assert provider.sent[0].startswith("acme/game\nA 2D game engine")
    after = vectors(store, provider)
    assert after["acme/game#0"][0] != before["acme/game#0"][0]
    assert {k: v for k, v in after.items() if k != "acme/game#0"} == {
        k: v for k, v in before.items() if k != "acme/game#0"
    }


def test_stars_only_change_re_embeds_nothing_but_updates_the_repository(store):
    seed(store)
    provider = RecordingProvider()
    materialise(store, provider)
    provider.sent.clear()
    store.upsert_source(
        [source_row("acme/game", "A 3D game engine", when="2021-02-03", stars=99999)]
    )
    repos, chunks, embeddings = materialise(store, provider)
    assert repos["updated"] == 1
    assert (chunks["added"], chunks["updated"], embeddings["embedded"]) == (0, 0, 0)
    assert provider.sent == []
    assert (
        store.execute(
            f"SELECT stars FROM \"{store.schema}\".repositories WHERE full_name = 'acme/game'"
        ).fetchone()[0]
        == 99999
    )


def test_deleted_source_row_loses_its_chunks_and_vectors(store):
    seed(store)
    provider = RecordingProvider()
    materialise(store, provider)
    store.execute(
        f'DELETE FROM "{store.schema}".repositories_source WHERE full_name = %s', ("acme/docs",)
    )
    repos, chunks, embeddings = materialise(store, provider)
    assert repos["deleted"] == 1
    assert chunks["deleted"] == embeddings["deleted"] > 1
    assert not [k for k in vectors(store, provider) if k.startswith("acme/docs")]
    assert store.status(store.active_space())["pending"] == 0


def test_shorter_readme_drops_the_vanished_chunks_in_the_same_write(store):
    seed(store)
    provider = RecordingProvider()
    _, first_chunks, _ = materialise(store, provider)
    store.upsert_source(
        [source_row("acme/docs", "Documentation site", readme=long_readme("docs", paragraphs=2))]
    )
    _, chunks, embeddings = materialise(store, provider)
    assert chunks["deleted"] > 0
    assert embeddings["deleted"] == chunks["deleted"]
    assert embeddings["row_count"] == chunks["row_count"] < first_chunks["row_count"]


def test_a_text_already_embedded_is_reused_not_sent_again(store):
    seed(store)
    provider = RecordingProvider()
    materialise(store, provider)
    provider.sent.clear()
    # The row moves to another month: its chunks move, their text (and so its vector) does not.
    store.execute(
        f'UPDATE "{store.schema}".repositories_source SET created_at = %s '
        "WHERE full_name = 'acme/game'",
        ("2023-07-01T00:00:00Z",),
    )
    repos, chunks, embeddings = materialise(store, provider)
    assert repos["updated"] == 1 and embeddings["embedded"] == 1
    assert embeddings["reused"] == 1 and provider.sent == []
    row_time = store.execute(
        f'SELECT row_time FROM "{store.schema}"."embeddings_'
        f'{space_name(provider.model, provider.dimensions)}" '
        "WHERE chunk_id = 'acme/game#0'"
    ).fetchone()[0]
    assert row_time.year == 2023


def test_invalid_rows_are_rejected_with_a_reason_and_others_load(store):
    seed(store)
    store.execute(
        f'INSERT INTO "{store.schema}".repositories_source (full_name, description) '
        "VALUES ('not a repository name', 'x'), ('ok/fine', 'plain SQL insert')"
    )
    store.execute(
        f'UPDATE "{store.schema}".repositories_source SET stars = -5 '
        "WHERE full_name = 'acme/game'"
    )
    provider = RecordingProvider()
    repos, _, _ = materialise(store, provider)
    assert repos["rejected"] == 2
    reasons = dict(
        store.execute(f'SELECT full_name, reason FROM "{store.schema}".rejected_rows').fetchall()
    )
    assert "owner/name" in reasons["not a repository name"]
    assert reasons["acme/game"] == "stars: negative: -5"
    assert {
        r[0] for r in store.execute(f'SELECT full_name FROM "{store.schema}".repositories')
    } == {"acme/vector-db", "acme/docs", "ok/fine"}
    # Fixing the row brings it back; the reject is forgotten.
    store.execute(
        f"UPDATE \"{store.schema}\".repositories_source SET stars = 5 WHERE full_name = 'acme/game'"
    )
    repos, _, _ = materialise(store, provider)
    assert repos["added"] == 1 and repos["rejected"] == 0
    assert "acme/game" not in dict(
        store.execute(f'SELECT full_name, reason FROM "{store.schema}".rejected_rows').fetchall()
    )


def test_bad_vectors_are_never_stored_and_stay_pending(store):
    seed(store)
    provider = RecordingProvider(poison={"3D game": "nan", "vector database": "zero"})
    _, chunks, embeddings = materialise(store, provider)
    assert embeddings["refused"] == 2
    assert embeddings["embedded"] == chunks["row_count"] - 2
    stored = vectors(store, provider)
    assert "acme/game#0" not in stored and "acme/vector-db#0" not in stored
    assert store.status(store.active_space())["pending"] == 2
    failures = dict(
        store.execute(
            f'SELECT chunk_id, reason FROM "{store.schema}".embedding_failures'
        ).fetchall()
    )
    assert "NaN" in failures["acme/game#0"] and "zero" in failures["acme/vector-db#0"]
    # A healthy provider later fills them in and clears the failures.
    healthy = RecordingProvider()
    _, _, embeddings = materialise(store, healthy)
    assert embeddings["embedded"] == 2 and len(healthy.sent) == 2
    assert store.status(store.active_space())["pending"] == 0
    assert (
        store.execute(f'SELECT count(*) FROM "{store.schema}".embedding_failures').fetchone()[0]
        == 0
    )


def test_partition_window_only_touches_its_rows(store):
    seed(store)
    provider = RecordingProvider()
    from datetime import UTC, datetime

    may_2020 = (datetime(2020, 5, 1, tzinfo=UTC), datetime(2020, 6, 1, tzinfo=UTC))
    repos, chunks, embeddings = materialise(store, provider, window=may_2020)
    assert repos["rows_in"] == 2  # acme/game lives in February 2021
    names = {r[0] for r in store.execute(f'SELECT full_name FROM "{store.schema}".repositories')}
    assert names == {"acme/vector-db", "acme/docs"}


def test_repeated_runs_leave_no_duplicates(store):
    seed(store)
    provider = RecordingProvider()
    for _ in range(3):
        materialise(store, provider)
        store.upsert_source(
            [source_row("acme/game", "Changing text again and again", when="2021-02-03")]
        )
    space = Space(
        space_name(provider.model, provider.dimensions), provider.model, provider.dimensions
    )
    duplicates = store.execute(
        f'SELECT count(*) - count(DISTINCT chunk_id) FROM "{store.schema}"."{space.table}"'
    ).fetchone()[0]
    assert duplicates == 0


def test_stored_vectors_are_exactly_the_arrays_written(store):
    """Arrays go to pgvector through the project's own binary dumper (float32 or float64 in,
    float32 stored): what comes back is the array, bit for bit, whichever way it is sent."""
    import numpy as np
    import pytest
    from psycopg.adapt import PyFormat

    from embed_assets.lib.store.base import _ArrayBinaryDumper

    assert issubclass(
        store.conn.adapters.get_dumper(np.ndarray, PyFormat.BINARY), _ArrayBinaryDumper
    )

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((3, 5))
    store.execute("CREATE TEMP TABLE dumped (id int, v vector(5))")
    with store.conn.cursor().copy("COPY dumped FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "vector"])
        copy.write_row((0, vectors[0]))  # float64
        copy.write_row((1, vectors[1].astype(np.float32)))
    store.execute("INSERT INTO dumped VALUES (2, %b)", (vectors[2],))
    rows = store.execute(
        "SELECT id, vector_send(v) FROM dumped ORDER BY id", binary=True
    ).fetchall()
    from embed_assets.lib.store.base import _vectors

    back = _vectors([row[1] for row in rows], 5)
    np.testing.assert_array_equal(back, vectors.astype(np.float32))
    with pytest.raises(ValueError, match=r"1-D array, got shape \(1, 5\)"):
        store.execute("SELECT %b::vector", (vectors[:1],))


def test_vector_problems_name_the_rows_that_must_not_be_stored():
    import numpy as np
    import pytest

    vectors = np.ones((6, 4), dtype=np.float32)
    vectors[1] = 0
    vectors[2, 3] = np.nan
    vectors[3, 0] = -np.inf
    vectors[4] = 1e-8  # norm 2e-8: zero for every purpose
    vectors[5] = 1e30  # squares overflow float32, the vector is still a direction
    assert pipeline.vector_problems(vectors, 6, 4) == {
        1: "zero vector",
        2: "not finite (NaN or inf)",
        3: "not finite (NaN or inf)",
        4: "zero vector",
    }
    assert pipeline.vector_problems(vectors[[0, 5]], 2, 4) == {}
    with pytest.raises(ValueError, match="6 vectors for 5 texts"):
        pipeline.vector_problems(vectors, 5, 4)
    with pytest.raises(ValueError, match="4-dimensional vectors; the embedding space has 8"):
        pipeline.vector_problems(vectors, 6, 8)
