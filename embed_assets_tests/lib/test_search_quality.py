"""Search quality control over the real database: HNSW build parameters by table size (and their
overrides), the recall check against exact search, and the cluster index's checks, each failing
on data made bad the way it could really happen."""

from dataclasses import replace
from itertools import pairwise

import pytest

from embed_assets.lib import hnsw, pipeline, quality
from embed_assets.lib.clusters.index import refresh_clusters, sync_cluster_index
from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets.lib.settings import SettingError, Settings
from embed_assets.lib.store import Store
from embed_assets_tests.helpers import ALL_TIME, source_row
from embed_assets_tests.lib.test_cluster_index import sample_rows

CLUSTER_CHECKS = [
    quality.every_vector_assigned,
    quality.no_empty_clusters,
    quality.cluster_sizes,
    quality.hnsw_recall,
]


def embed(store, rows=None) -> dict:
    if rows is not None:
        store.upsert_source(rows)
    pipeline.sync_rows(store, *ALL_TIME)
    pipeline.sync_chunks(store, *ALL_TIME, 1500, 200)
    return pipeline.sync_embeddings(store, *ALL_TIME, OfflineHashingProvider(dimensions=384))


def cluster(store) -> dict:
    return sync_cluster_index(store, threshold=0.3, near_duplicate=0.95)


def evaluate(store, check, **thresholds) -> quality.Outcome:
    return check(quality.Scope(store, quality.Window(), quality.QualitySettings(**thresholds)))


def table(store, name: str) -> str:
    return f'"{store.schema}"."{name}"'


# -- HNSW build parameters -----------------------------------------------------------------------
def test_build_parameters_follow_the_table_size_unless_set():
    assert hnsw.build_parameters(0) == (16, 64)
    assert hnsw.build_parameters(1_000_000) == (16, 64)
    assert hnsw.build_parameters(1_000_001) == (24, 128)
    assert hnsw.build_parameters(10, m=8) == (8, 64)
    assert hnsw.build_parameters(10, m=16) == (16, 64)
    assert hnsw.build_parameters(10, m=48) == (48, 96)  # pgvector: ef_construction >= 2 m
    assert hnsw.build_parameters(500_000, ef_construction=200) == (16, 200)
    assert hnsw.build_parameters(5_000_000, m=16) == (16, 128)
    assert hnsw.build_parameters(10, m=2, ef_construction=4) == (2, 4)


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"EMBED_ASSETS_HNSW_M": "1"}, "EMBED_ASSETS_HNSW_M must be between 2 and 100"),
        (
            {"EMBED_ASSETS_HNSW_EF_CONSTRUCTION": "2000"},
            "EMBED_ASSETS_HNSW_EF_CONSTRUCTION must be",
        ),
        (
            {"EMBED_ASSETS_HNSW_M": "32", "EMBED_ASSETS_HNSW_EF_CONSTRUCTION": "40"},
            r"EMBED_ASSETS_HNSW_EF_CONSTRUCTION must be at least twice EMBED_ASSETS_HNSW_M \(64\)",
        ),
        ({"EMBED_ASSETS_EF_SEARCH": "0"}, "EMBED_ASSETS_EF_SEARCH must be between 1 and 1000"),
        ({"EMBED_ASSETS_EF_SEARCH": "many"}, "EMBED_ASSETS_EF_SEARCH must be an integer"),
        ({"EMBED_ASSETS_CHECK_ERROR_RECALL": "0.97"}, "EMBED_ASSETS_CHECK_ERROR_RECALL the lower"),
        ({"EMBED_ASSETS_CHECK_MAX_CLUSTER_SHARE": "0"}, "EMBED_ASSETS_CHECK_MAX_CLUSTER_SHARE"),
        (
            {"EMBED_ASSETS_CHECK_RECALL_QUERIES": "2.5"},
            "EMBED_ASSETS_CHECK_RECALL_QUERIES must be an integer",
        ),
    ],
)
def test_bad_search_settings_name_their_variable(environ, message):
    with pytest.raises(SettingError, match=message):
        Settings.from_env(environ)
        quality.QualitySettings.from_env(environ)


def test_the_index_is_built_by_size_and_the_metadata_says_how(store):
    written = embed(store, [source_row(f"acme/r{i}", f"tool number {i}") for i in range(30)])
    assert written["index_rebuilt"]
    assert (written["hnsw_m"], written["hnsw_ef_construction"]) == (16, 64)
    assert store.index_parameters(store.active_space()) == (16, 64)
    # A small increment goes into the index as it is, and reports what that index was built with.
    custom = Store(store.conn, replace(store.settings, hnsw_m=8, hnsw_ef_construction=20))
    store.execute(f"DROP INDEX {table(store, store.active_space().table + '_hnsw')}")
    custom.upsert_source([source_row("acme/new", "a new tool")])
    first = embed(custom)
    assert (first["index_rebuilt"], first["hnsw_m"], first["hnsw_ef_construction"]) == (True, 8, 20)
    store.upsert_source([source_row("acme/newer", "a newer tool")])
    again = embed(store)
    assert (again["index_rebuilt"], again["hnsw_m"], again["hnsw_ef_construction"]) == (
        False,
        8,
        20,
    )


# -- recall ----------------------------------------------------------------------------------------
def test_recall_passes_on_a_sound_index_and_fails_on_a_degenerate_one(store):
    rows = sample_rows(500)
    embed(store, rows)
    good = evaluate(store, quality.hnsw_recall)
    assert good.passed, good
    assert good.metadata["recall"] >= 0.95 and good.metadata["queries"] == 30
    assert (good.metadata["hnsw_m"], good.metadata["hnsw_ef_construction"]) == (16, 64)
    assert good.metadata["seconds"] < 5
    # The same sample every time.
    space = store.active_space()
    assert [v[0] for v in store.sample_vectors(space, 5)] == [
        v[0] for v in store.sample_vectors(space, 5)
    ]

    # A graph of two links per node, built with 4 candidates: searches miss most neighbours
    # (recall 0.29..0.45 measured over builds of 1,000 such rows).
    store.execute(f"DROP INDEX {table(store, space.table + '_hnsw')}")
    degenerate = Store(store.conn, replace(store.settings, hnsw_m=2, hnsw_ef_construction=4))
    degenerate.upsert_source(sample_rows(501)[500:])
    assert embed(degenerate)["hnsw_m"] == 2
    bad = evaluate(store, quality.hnsw_recall)
    assert (bad.passed, bad.severity) == (False, "ERROR"), bad
    assert bad.metadata["recall"] < 0.85 and bad.metadata["hnsw_m"] == 2
    assert bad.metadata["examples"] and "EMBED_ASSETS_EF_SEARCH" in bad.description
    lenient = evaluate(store, quality.hnsw_recall, min_recall=1.0, error_recall=0.0)
    assert (lenient.passed, lenient.severity) == (False, "WARN")


def test_exact_search_scans_and_agrees_with_the_index_on_a_small_space(store):
    embed(store, sample_rows(200))
    space = store.active_space()
    query = OfflineHashingProvider(384).embed(["static site generator in go"])[0]
    exact = store.search(space, query, 10, exact=True)
    assert [h[0] for h in store.search(space, query, 10)] == [h[0] for h in exact]
    assert len(exact) == 10 and all(a[1] >= b[1] for a, b in pairwise(exact))


# -- cluster_index -------------------------------------------------------------------------------
def test_cluster_checks_pass_on_a_clean_index(store):
    embed(store, sample_rows(300))
    cluster(store)
    outcomes = {check.__name__: evaluate(store, check) for check in CLUSTER_CHECKS}
    assert {name: o.passed for name, o in outcomes.items()} == dict.fromkeys(outcomes, True), (
        outcomes
    )
    sizes = outcomes["cluster_sizes"]
    assert sizes.metadata["members"] == 300 and sizes.metadata["largest_share"] <= 0.2
    assert sizes.metadata["largest"][0].startswith("cluster ")
    # An operator's removal is not a missing assignment.
    space = store.active_space()
    name, left = next(iter(store.cluster_assignments(space).items()))
    store.remove_cluster_member(space, name)
    refresh_clusters(store, space, [left])
    assert evaluate(store, quality.every_vector_assigned).passed
    assert evaluate(store, quality.no_empty_clusters).passed


def test_unassigned_and_stale_repositories_fail_with_examples(store):
    embed(store, sample_rows(120))
    cluster(store)
    space = store.active_space()
    lost = sorted(store.cluster_assignments(space))[0]
    store.execute(f"DELETE FROM {table(store, 'cluster_members')} WHERE key = %s", (lost,))
    # A new description, embedded but not yet clustered.
    store.execute(
        f"UPDATE {table(store, 'repositories_source')} SET description = 'renamed' "
        "WHERE full_name = %s",
        (sorted(store.cluster_assignments(space))[1],),
    )
    embed(store)
    outcome = evaluate(store, quality.every_vector_assigned)
    assert (outcome.passed, outcome.severity) == (False, "ERROR")
    assert (outcome.metadata["unassigned"], outcome.metadata["stale"]) == (1, 1)
    assert lost in outcome.metadata["examples"] and outcome.metadata["failing_partitions"]
    # The deleted member's cluster now says one more member than it has.
    mismatch = evaluate(store, quality.no_empty_clusters)
    assert not mismatch.passed and mismatch.metadata["size_mismatch"] == 1
    cluster(store)  # the next run assigns both again
    assert evaluate(store, quality.every_vector_assigned).passed


def test_empty_clusters_fail(store):
    embed(store, sample_rows(50))
    cluster(store)
    store.execute(
        f"INSERT INTO {table(store, 'clusters')} (space, cluster_id, size, vector_sum, "
        "label, representative, mean_similarity) SELECT space, 9999, 3, vector_sum, "
        f"'ghost', representative, 1 FROM {table(store, 'clusters')} LIMIT 1"
    )
    store.execute(
        f"INSERT INTO {table(store, 'clusters')} (space, cluster_id, size, vector_sum, "
        "label, representative, mean_similarity) SELECT space, 9998, 0, vector_sum, "
        f"'zero', representative, 1 FROM {table(store, 'clusters')} LIMIT 1"
    )
    outcome = evaluate(store, quality.no_empty_clusters)
    assert (outcome.passed, outcome.severity, outcome.metadata["empty"]) == (False, "ERROR", 2)
    assert outcome.metadata["examples"] == [
        "cluster 9998: size 0, 0 members",
        "cluster 9999: size 3, 0 members",
    ]
    assert "failing_partitions" not in outcome.metadata


def test_one_giant_cluster_warns_with_the_largest(store):
    embed(store, sample_rows(150))
    cluster(store)
    space = store.active_space()
    names = sorted(store.cluster_assignments(space))
    giant = store.cluster_assignments(space)[names[0]]
    before = set(store.cluster_assignments(space).values())
    store.execute(
        f"UPDATE {table(store, 'cluster_members')} SET cluster_id = %s WHERE key = ANY(%s)",
        (giant, names[:60]),
    )
    refresh_clusters(store, space, before)
    outcome = evaluate(store, quality.cluster_sizes)
    assert (outcome.passed, outcome.severity) == (False, "WARN")
    assert outcome.metadata["largest_size"] >= 60 and outcome.metadata["largest_share"] >= 0.4
    assert outcome.metadata["examples"][0].startswith(f"cluster {giant}: ")
    assert evaluate(store, quality.cluster_sizes, max_cluster_share=0.9).passed
    assert evaluate(store, quality.no_empty_clusters).passed  # sizes were recomputed


def test_few_members_are_not_judged_by_share(store):
    embed(store, [source_row(f"acme/r{i}", "the same tool") for i in range(5)])
    cluster(store)
    outcome = evaluate(store, quality.cluster_sizes)
    assert outcome.passed and "too few" in outcome.description


def test_cluster_checks_pass_before_anything_is_embedded(store):
    for check in CLUSTER_CHECKS:
        outcome = evaluate(store, check)
        assert outcome.passed and outcome.description.startswith("no embedding space yet")
