"""The cluster_index checks in a real Dagster run of cluster_index, against the real database."""

import dagster as dg

from embed_assets.definitions import build_definitions
from embed_assets_tests.defs.test_checks import evaluations
from embed_assets_tests.helpers import asset_key
from embed_assets_tests.lib.test_cluster_index import sample_rows
from embed_assets_tests.lib.test_search_quality import embed

CLUSTER_CHECKS = {
    "every_vector_assigned": "ERROR",
    "no_empty_clusters": "ERROR",
    "cluster_sizes": "WARN",
    "hnsw_recall": "ERROR",
}


def test_a_cluster_index_run_evaluates_its_checks_and_none_blocks(settings, store):
    embed(store, sample_rows(150))
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance, asset_selection=[asset_key("cluster_index")]
        )
        assert result.success
        found = {
            name: e
            for (asset, name), e in evaluations(result).items()
            if asset == "repositories/cluster_index"
        }
        assert set(found) == set(CLUSTER_CHECKS)
        for name, evaluation in found.items():
            assert evaluation.passed, (name, evaluation.description)
            assert not evaluation.blocking
            assert evaluation.severity.value == CLUSTER_CHECKS[name]
        assert found["hnsw_recall"].metadata["recall"].value >= 0.95
        assert found["cluster_sizes"].metadata["members"].value == 150

        # A cluster row with no member left behind by hand: the check fails, the run does not.
        store.execute(
            f'INSERT INTO "{store.schema}".clusters (space, cluster_id, size, '
            "vector_sum, label, representative, mean_similarity) SELECT space, 9999, "
            f"2, vector_sum, 'ghost', representative, 1 FROM \"{store.schema}\".clusters "
            "LIMIT 1"
        )
        result = job.execute_in_process(
            instance=instance, asset_selection=[asset_key("cluster_index")]
        )
        assert result.success
        empty = evaluations(result)[("repositories/cluster_index", "no_empty_clusters")]
        assert (empty.passed, empty.severity) == (False, dg.AssetCheckSeverity.ERROR)
        assert empty.metadata["examples"].value == "- `cluster 9999: size 2, 0 members`"
