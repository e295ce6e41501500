"""The asset checks in real Dagster runs against the real database: the window a run's checks
evaluate, a blocking check that stops what is downstream, and `status --json`'s latest results."""

import json

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from psycopg import sql

from embed_assets.cli import main
from embed_assets.definitions import build_definitions
from embed_assets.instance import project_instance
from embed_assets.lib import pipeline
from embed_assets.lib.providers import build_provider
from embed_assets_tests.helpers import ALL_TIME, asset_key, node, source_row

CHECK_NAMES = {
    "repositories/rows": {"rejected_ratio", "required_fields", "no_duplicate_names"},
    "repositories/chunks": {"no_empty_chunks", "chunk_sizes", "repositories_chunked"},
    "repositories/embeddings": {
        "vector_dimensions",
        "finite_vectors",
        "no_zero_vectors",
        "vector_norms",
        "coverage",
        "no_orphan_vectors",
        "refused_vectors",
    },
}


def evaluations(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def seed(store, settings):
    """Rows in May and June 2020, materialised without Dagster (as an earlier run would have)."""
    store.upsert_source(
        [
            source_row("acme/one", "first", when="2020-05-02"),
            source_row("acme/two", "second", when="2020-05-20"),
            source_row("acme/three", "third", when="2020-06-09"),
        ]
    )
    pipeline.sync_rows(store, *ALL_TIME)
    pipeline.sync_chunks(store, *ALL_TIME, settings.chunk_chars, settings.chunk_overlap)
    pipeline.sync_embeddings(store, *ALL_TIME, build_provider(settings))


def test_sync_checks_its_partitions_and_status_checks_the_whole_store(settings, store, capsys):
    store.upsert_source(
        [
            source_row("acme/one", "first", when="2020-05-02"),
            source_row("acme/three", "third", when="2020-07-09"),
        ]
    )
    assert main(["sync", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {k: status[k] for k in ("repositories", "chunks", "embeddings", "pending")} == {
        "repositories": 2,
        "chunks": 2,
        "embeddings": 2,
        "pending": 0,
    }
    ours = [c for c in status["checks"] if c["asset"] in CHECK_NAMES]
    assert {(c["asset"], c["name"]) for c in ours} == {
        (a, n) for a, names in CHECK_NAMES.items() for n in names
    }
    for check in ours:
        assert set(check) == {"asset", "name", "passed", "severity", "description"}
        assert check["passed"] is True, check
    assert {c["severity"] for c in ours} == {"ERROR", "WARN"}
    assert main(["status"]) == 0
    assert "passed  ERROR repositories/embeddings.coverage" in capsys.readouterr().out

    # A later run over July alone checks July; status still sees May's broken vector.
    store.execute(
        sql.SQL(
            "UPDATE {} SET embedding = (SELECT array_agg(x * 0) FROM "
            "unnest(embedding::real[]) x)::vector WHERE chunk_id LIKE 'acme/one#%%'"
        ).format(store.t(store.active_space().table))
    )
    store.upsert_source([source_row("acme/three", "third, edited", when="2020-07-09")])
    assert main(["sync", "--skip-clusters", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changed_partitions"] == 1
    assert main(["status", "--json"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["no_zero_vectors"]["passed"] is False, checks["no_zero_vectors"]
    assert main(["status"]) == 0
    assert "FAILED  ERROR repositories/embeddings.no_zero_vectors: " in capsys.readouterr().out

    with project_instance(settings) as instance:
        records = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records]
        metadata = {evaluation.check_name: evaluation.metadata for evaluation in evaluations}
        assert metadata["coverage"]["partitions"].value == "2020-05-01...2020-07-01"
        assert metadata["freshness"]["newest_partition"].value == "2020-07-01"
        preview = instance.fetch_materializations(asset_key("rows"), limit=10).records
        tables = [
            r.asset_materialization.metadata["preview"].value
            for r in preview
            if "preview" in r.asset_materialization.metadata and r.run_id == run_id
        ]
        # One materialisation per month of the range, all with the run's metadata.
        assert len(tables) == 3 and "| acme/one | Python | 10 | first |" in tables[0]
        assert "| acme/three | Python | 10 | third |" in tables[0]


def test_a_failing_blocking_check_stops_the_cluster_index(settings, store):
    seed(store, settings)
    space = store.active_space()
    # A zero vector is a valid pgvector value: stored by anything but the pipeline, it passes
    # the embeddings step (which has nothing to do) and only the checks see it.
    store.execute(
        f'UPDATE "{store.schema}"."{space.table}" '
        f"SET embedding = array_fill(0, ARRAY[{space.dimensions}])::real[]::vector "
        "WHERE chunk_id = 'acme/two#0'"
    )
    # A failing ERROR check that is not blocking (on repositories) stops nothing.
    store.execute(
        f"UPDATE \"{store.schema}\".repositories SET url = '' WHERE full_name = 'acme/one'"
    )
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={
                ASSET_PARTITION_RANGE_START_TAG: "2020-05-01",
                ASSET_PARTITION_RANGE_END_TAG: "2020-05-01",
            },
            asset_selection=[
                asset_key(a) for a in ("rows", "chunks", "embeddings", "cluster_index")
            ],
        )
        assert not result.success
        found = evaluations(result)
        zero = found[("repositories/embeddings", "no_zero_vectors")]
        assert (zero.passed, zero.severity, zero.blocking) == (
            False,
            dg.AssetCheckSeverity.ERROR,
            True,
        )
        assert zero.metadata["examples"].value == "- `acme/two#0: norm 0.000000`"
        assert zero.metadata["partitions"].value == "2020-05-01"
        fields = found[("repositories/rows", "required_fields")]
        assert (fields.passed, fields.blocking) == (False, False)
        assert result.asset_materializations_for_node(node("embeddings"))  # it still counts as done
        assert not result.asset_materializations_for_node(node("cluster_index"))
        started = {e.step_key for e in result.all_events if e.is_step_start}
        assert "repositories__embeddings_checks" in started
        assert node("cluster_index") not in started


def test_checks_run_alone_look_at_the_whole_space(settings, store):
    seed(store, settings)
    store.execute(f"DELETE FROM \"{store.schema}\".chunks WHERE key = 'acme/three'")
    defs = dg.Definitions.merge(
        build_definitions(settings),
        dg.Definitions(
            jobs=[
                dg.define_asset_job(
                    "chunk_checks",
                    selection=dg.AssetSelection.checks_for_assets(asset_key("chunks")),
                )
            ]
        ),
    )
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("chunk_checks").execute_in_process(instance=instance)
    assert result.success  # no check on chunks is blocking
    found = evaluations(result)
    assert set(found) == {("repositories/chunks", n) for n in CHECK_NAMES["repositories/chunks"]}
    unchunked = found[("repositories/chunks", "repositories_chunked")]
    assert not unchunked.passed and unchunked.metadata["partitions"].value == "all"
    assert unchunked.metadata["failing_partitions"].value == "- `2020-06-01`"
