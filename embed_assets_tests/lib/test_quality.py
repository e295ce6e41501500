"""What the asset checks decide, over the real database, with bad rows crafted the way they could
really occur (a writer bypassing the pipeline, a broken model server, a column altered by hand)."""

from datetime import UTC, datetime

import psycopg
import pytest

from embed_assets.lib import pipeline, quality
from embed_assets.lib.settings import SettingError
from embed_assets_tests.helpers import ALL_TIME, RecordingProvider, source_row

MAY = quality.Window(
    datetime(2020, 5, 1, tzinfo=UTC), datetime(2020, 6, 1, tzinfo=UTC), "2020-05-01"
)
JUNE = quality.Window(
    datetime(2020, 6, 1, tzinfo=UTC), datetime(2020, 7, 1, tzinfo=UTC), "2020-06-01"
)
CHECKS = [
    quality.rejected_ratio,
    quality.required_fields,
    quality.duplicate_names,
    quality.no_empty_chunks,
    quality.chunk_sizes,
    quality.repositories_chunked,
    quality.vector_dimensions,
    quality.finite_vectors,
    quality.no_zero_vectors,
    quality.vector_norms,
    quality.coverage,
    quality.no_orphan_vectors,
    quality.refused_vectors,
]


def materialise(store, provider=None):
    pipeline.sync_rows(store, *ALL_TIME)
    pipeline.sync_chunks(store, *ALL_TIME, 400, 80)
    pipeline.sync_embeddings(store, *ALL_TIME, provider or RecordingProvider())


def seed(store, *extra):
    store.upsert_source(
        [
            source_row("acme/one", "first", when="2020-05-02"),
            source_row("acme/two", "second", when="2020-05-20"),
            source_row("acme/three", "third", when="2020-06-09"),
            *extra,
        ]
    )


def evaluate(store, check, window=None, **thresholds) -> quality.Outcome:
    window = window or quality.Window()
    scope = quality.Scope(store, window, quality.QualitySettings(**thresholds), chunk_chars=400)
    return check(scope)


def failures(store, window=None) -> dict[str, quality.Outcome]:
    outcomes = {check.__name__: evaluate(store, check, window) for check in CHECKS}
    return {name: outcome for name, outcome in outcomes.items() if not outcome.passed}


def vectors(store) -> str:
    return f'"{store.schema}"."{store.active_space().table}"'


def test_clean_data_passes_every_check_and_says_where_it_looked(store):
    seed(store)
    materialise(store)
    assert failures(store) == {}
    outcome = evaluate(store, quality.coverage, MAY)
    assert outcome.metadata["partitions"] == "2020-05-01" and outcome.severity == "ERROR"
    assert evaluate(store, quality.coverage).metadata["partitions"] == "all"


def test_rejected_rows_fail_on_their_ratio_with_examples(store):
    seed(
        store,
        source_row("bad name", when="2020-05-03"),
        source_row("acme/negative", when="2020-05-04", stars=-3),
    )
    materialise(store)
    outcome = evaluate(store, quality.rejected_ratio)
    assert not outcome.passed and outcome.severity == "ERROR"
    assert (outcome.metadata["rejected"], outcome.metadata["source_rows"]) == (2, 5)
    assert outcome.metadata["ratio"] == 0.4
    assert outcome.metadata["failing_partitions"] == ["2020-05-01"]
    assert any(e.startswith("bad name: full_name") for e in outcome.metadata["examples"])
    assert evaluate(store, quality.rejected_ratio, JUNE).passed  # June has none
    assert evaluate(store, quality.rejected_ratio, max_rejected_ratio=0.5).passed


def test_missing_fields_and_names_equal_up_to_case(store):
    seed(store, source_row("Acme/Two", when="2020-06-20"))
    materialise(store)
    store.execute(
        f"UPDATE \"{store.schema}\".repositories SET url = '' WHERE full_name = 'acme/one'"
    )
    fields = evaluate(store, quality.required_fields, MAY)
    assert not fields.passed and fields.severity == "ERROR"
    assert (fields.metadata["bad_url"], fields.metadata["examples"]) == (1, ["acme/one"])
    assert evaluate(store, quality.required_fields, JUNE).passed
    duplicates = evaluate(store, quality.duplicate_names, JUNE)  # its twin is in May
    assert not duplicates.passed and duplicates.severity == "WARN"
    assert duplicates.metadata["examples"] == ["Acme/Two"]
    assert evaluate(store, quality.duplicate_names).metadata["duplicates"] == 2


def test_empty_oversized_and_missing_chunks(store):
    seed(store)
    materialise(store)
    chunks = f'"{store.schema}".chunks'
    store.execute(f"UPDATE {chunks} SET text = E' \\n ' WHERE key = 'acme/one'")
    store.execute(f"UPDATE {chunks} SET text = repeat('x', 401) WHERE key = 'acme/two'")
    store.execute(f"DELETE FROM {chunks} WHERE key = 'acme/three'")
    failed = failures(store)
    assert {
        n: (o.severity, o.metadata.get("examples"))
        for n, o in failed.items()
        if n in ("no_empty_chunks", "chunk_sizes", "repositories_chunked")
    } == {
        "no_empty_chunks": ("ERROR", ["acme/one#0: 3 chars"]),
        "chunk_sizes": ("WARN", ["acme/two#0: 401 chars"]),
        "repositories_chunked": ("ERROR", ["acme/three"]),
    }
    assert evaluate(store, quality.repositories_chunked).metadata["failing_partitions"] == [
        "2020-06-01"
    ]
    assert evaluate(store, quality.repositories_chunked, MAY).passed


def test_bad_stored_vectors_fail_their_checks(store):
    seed(store)
    materialise(store)
    table, dims = vectors(store), store.active_space().dimensions
    # A zero vector and one with a huge norm are valid pgvector values: a writer could store them.
    store.execute(
        f"UPDATE {table} SET embedding = array_fill(0, ARRAY[{dims}])::real[]::vector "
        "WHERE chunk_id = 'acme/one#0'"
    )
    store.execute(
        f"UPDATE {table} SET embedding = array_fill(1e6, ARRAY[{dims}])::real[]::vector "
        "WHERE chunk_id = 'acme/two#0'"
    )
    # Wrong dimensions need the column untyped (and so without its HNSW index), as an old
    # migration might leave it.
    store.execute(f'DROP INDEX "{store.schema}"."{store.active_space().table}_hnsw"')
    store.execute(f"ALTER TABLE {table} ALTER COLUMN embedding TYPE vector")
    store.execute(f"UPDATE {table} SET embedding = '[1,2,3]' WHERE chunk_id = 'acme/three#0'")
    failed = failures(store)
    assert set(failed) == {"vector_dimensions", "no_zero_vectors", "vector_norms"}
    assert {o.severity for o in failed.values()} == {"ERROR"}
    assert failed["vector_dimensions"].metadata["examples"] == ["acme/three#0: 3 dimensions"]
    assert failed["no_zero_vectors"].metadata["stored"] == 1
    assert failed["vector_norms"].metadata["examples"][0].startswith("acme/two#0: norm 8000000")
    assert failed["vector_norms"].metadata["failing_partitions"] == ["2020-05-01"]
    assert evaluate(store, quality.vector_norms, JUNE).passed
    assert evaluate(store, quality.vector_norms, max_norm=1e8).passed


def test_nan_cannot_be_stored_so_the_finite_check_counts_the_refused_ones(store):
    seed(store)
    materialise(store, RecordingProvider(poison={"second": "nan", "third": "zero"}))
    with pytest.raises(psycopg.errors.DataException):  # pgvector refuses NaN on every input path
        store.execute(
            f"UPDATE {vectors(store)} SET embedding = array_fill('NaN'::real, ARRAY[64])::vector"
        )
    failed = failures(store)
    assert {n: o.severity for n, o in failed.items()} == {
        "finite_vectors": "WARN",
        "no_zero_vectors": "WARN",
        "coverage": "WARN",
        "refused_vectors": "ERROR",
    }  # the one that alerts by default, without blocking
    assert failed["refused_vectors"].metadata["refused"] == 2
    assert failed["finite_vectors"].metadata["refused"] == 1
    assert failed["finite_vectors"].metadata["examples"][0].startswith("acme/two#0: vector refused")
    assert (failed["coverage"].metadata["missing"], failed["coverage"].metadata["refused"]) == (
        0,
        2,
    )
    materialise(store)  # a healthy provider fills them in
    assert failures(store) == {}


def test_orphans_and_unexplained_missing_vectors_are_errors(store):
    seed(store)
    materialise(store)
    table = vectors(store)
    store.execute(
        f"INSERT INTO {table} (chunk_id, content_hash, row_time, embedding) "
        "SELECT 'gone/repo#0', 'h', '2020-06-03', embedding FROM "
        + table
        + " WHERE chunk_id = 'acme/one#0'"
    )
    store.execute(f"DELETE FROM {table} WHERE chunk_id = 'acme/two#0'")
    failed = failures(store)
    assert set(failed) == {"no_orphan_vectors", "coverage"}
    assert failed["no_orphan_vectors"].metadata["examples"] == ["gone/repo#0"]
    assert failed["coverage"].severity == "ERROR"
    assert failed["coverage"].metadata["examples"] == ["acme/two#0"]
    assert set(failures(store, JUNE)) == {"no_orphan_vectors"}
    assert set(failures(store, MAY)) == {"coverage"}


def test_chunks_without_any_embedding_space_fail_coverage(store):
    seed(store)
    pipeline.sync_rows(store, *ALL_TIME)
    pipeline.sync_chunks(store, *ALL_TIME, 400, 80)
    assert set(failures(store)) == {"coverage"}
    assert evaluate(store, quality.coverage).metadata["missing"] == 3


def test_freshness_of_the_newest_partition():
    settings = quality.QualitySettings(max_age_hours=2)
    now = datetime(2026, 1, 10, 12, tzinfo=UTC).timestamp()
    fresh = quality.freshness("2026-01-01", now - 3600, settings, now=now)
    stale = quality.freshness("2026-01-01", now - 3 * 3600, settings, now=now)
    assert fresh.passed and not stale.passed and stale.severity == "WARN"
    assert stale.metadata["age_hours"] == 3.0 and stale.metadata["newest_partition"] == "2026-01-01"
    assert not quality.freshness(None, None, settings, now=now).passed


def test_thresholds_from_the_environment_name_their_variable():
    assert quality.QualitySettings.from_env({}) == quality.QualitySettings()
    settings = quality.QualitySettings.from_env(
        {"EMBED_ASSETS_CHECK_MAX_NORM": "10", "EMBED_ASSETS_CHECK_MAX_AGE_HOURS": "6"}
    )
    assert (settings.max_norm, settings.max_age_hours) == (10.0, 6.0)
    for variable, value in (
        ("MAX_REJECTED_RATIO", "2"),
        ("MIN_NORM", "lots"),
        ("MAX_AGE_HOURS", "0"),
    ):
        with pytest.raises(SettingError, match=f"EMBED_ASSETS_CHECK_{variable}"):
            quality.QualitySettings.from_env({f"EMBED_ASSETS_CHECK_{variable}": value})


def test_markdown_table_shortens_and_escapes():
    table = quality.markdown_table([{"full_name": "a/b", "description": "x | y\nz" + "w" * 80}])
    lines = table.splitlines()
    assert lines[:2] == ["| full_name | description |", "|---|---|"]
    assert "x \\| y z" in lines[2] and lines[2].endswith("… |")
    assert quality.markdown_table([]) == ""
