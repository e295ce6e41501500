"""Materialising the assets through Dagster, over single partitions and partition ranges."""

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from embed_assets.definitions import build_definitions
from embed_assets_tests.helpers import asset_key, node, source_row

REQUIRED_METADATA = {
    "dagster/row_count",
    "rows_in",
    "added",
    "updated",
    "unchanged",
    "deleted",
    "seconds",
}


def run(settings, instance, first, last=None):
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    tags = {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last or first}
    result = job.execute_in_process(instance=instance, tags=tags)
    assert result.success
    return result


def metadata(result, asset):
    events = result.asset_materializations_for_node(node(asset))
    return {key: value.value for key, value in events[0].metadata.items()}, len(events)


def test_one_partition_materialises_its_rows_and_reports_metadata(settings, store):
    store.upsert_source(
        [
            source_row("a/one", "first", when="2020-05-02"),
            source_row("a/two", "second", when="2020-06-09"),
        ]
    )
    with dg.instance_for_test() as instance:
        result = run(settings, instance, "2020-05-01")
    for asset in ("rows", "chunks", "embeddings"):
        values, count = metadata(result, asset)
        assert REQUIRED_METADATA <= set(values), asset
        assert count == 1
    values, _ = metadata(result, "embeddings")
    assert values["embedded"] == 1 and values["dagster/row_count"] == 1
    assert {
        "cache_hits",
        "cache_misses",
        "provider_calls",
        "latency_p50_ms",
        "latency_p95_ms",
    } <= set(values)
    assert store.status(store.active_space())["chunks"] == 1  # June was not touched


def test_a_range_is_one_run_covering_every_partition_in_it(settings, store):
    store.upsert_source(
        [
            source_row("a/one", "first", when="2019-01-02"),
            source_row("a/two", "second", when="2020-06-09"),
        ]
    )
    with dg.instance_for_test() as instance:
        result = run(settings, instance, "2019-01-01", "2020-06-01")
        assert instance.get_runs_count() == 1
        _, count = metadata(result, "embeddings")
        assert count == 18  # one materialisation per month of the range
        totals = result.asset_observations_for_node(node("embeddings"))
        assert len(totals) == 1  # the range's totals, once
        assert totals[0].metadata["embedded"].value == 2
        assert totals[0].metadata["partitions"].value == 18
        status = instance.get_status_by_partition(
            asset_key("embeddings"),
            ["2019-01-01", "2019-07-01", "2020-06-01"],
            build_definitions(settings)
            .resolve_asset_graph()
            .get(asset_key("embeddings"))
            .partitions_def,
        )
        assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}
    assert store.status(store.active_space())["pending"] == 0


def by_partition(result, asset: str) -> dict[str, dict]:
    return {
        event.partition: {key: value.value for key, value in event.metadata.items()}
        for event in result.asset_materializations_for_node(node(asset))
    }


def test_each_month_of_a_range_run_carries_its_own_counts(settings, store):
    """The UI's per-partition plots: every month of a run over a range records that month's
    rows, not the range's; figures of the whole step (seconds) are the run's."""
    store.upsert_source(
        [source_row(f"jan/r{i}", f"january {i}", when="2019-01-05") for i in range(3)]
        + [source_row("mar/only", "march", when="2019-03-09")]
    )
    with dg.instance_for_test() as instance:
        first = run(settings, instance, "2019-01-01", "2019-04-01")
        store.upsert_source([source_row("mar/only", "march, edited", when="2019-03-09")])
        second = run(settings, instance, "2019-01-01", "2019-04-01")
    expected_rows = {"2019-01-01": 3, "2019-02-01": 0, "2019-03-01": 1, "2019-04-01": 0}
    for asset in ("rows", "chunks", "embeddings"):
        months = by_partition(first, asset)
        assert {k: m["dagster/row_count"] for k, m in months.items()} == expected_rows, asset
        assert {k: m["added"] for k, m in months.items()} == expected_rows, asset
        assert len({m["seconds"] for m in months.values()}) == 1  # the step's, on each month
    embedded = by_partition(first, "embeddings")
    assert [embedded[k]["embedded"] for k in sorted(embedded)] == [3, 0, 1, 0]
    # The second run changed one row of March: only March says so.
    rows = by_partition(second, "rows")
    assert {k: (m["updated"], m["unchanged"]) for k, m in rows.items()} == {
        "2019-01-01": (0, 3),
        "2019-02-01": (0, 0),
        "2019-03-01": (1, 0),
        "2019-04-01": (0, 0),
    }
    assert {k: m["embedded"] for k, m in by_partition(second, "embeddings").items()} == {
        "2019-01-01": 0,
        "2019-02-01": 0,
        "2019-03-01": 1,
        "2019-04-01": 0,
    }
