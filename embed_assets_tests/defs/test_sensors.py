"""The sensor on new source rows and the schedules, evaluated with a real instance and database;
their run requests are then executed as the daemon would."""

from datetime import UTC, datetime

import dagster as dg
from psycopg import sql

from embed_assets.components.assets import monthly_partitions
from embed_assets.components.sensors import MAX_RUNS_PER_TICK
from embed_assets.definitions import build_definitions
from embed_assets.defs.resources import resources_from
from embed_assets.lib.settings import Settings
from embed_assets_tests.helpers import asset_key, source_row

START, END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def tick(settings, instance, cursor=None):
    # Closed after use: the instance it opens from the ref must not outlive the test's.
    with dg.build_sensor_context(
        instance_ref=instance.get_ref(),
        cursor=cursor,
        resources={"database": resources_from(settings)["database"]},
    ) as context:
        return build_definitions(settings).resolve_sensor_def("repositories_new_source_rows")(
            context
        )


def ranges(result):
    return [(r.tags[START], r.tags[END]) for r in result.run_requests]


def execute(settings, instance, request):
    """What the daemon does with a run request of the sensor (its target: the partitioned
    assets)."""
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    selection = [asset_key(a) for a in ("rows", "chunks", "embeddings")]
    tags = dict(request.tags)
    if request.partition_key:
        tags |= {START: request.partition_key, END: request.partition_key}
    assert job.execute_in_process(instance=instance, tags=tags, asset_selection=selection).success


def test_an_empty_change_log_skips_cheaply(settings, store):
    with dg.instance_for_test() as instance:
        result = tick(settings, instance)
    assert result.run_requests == [] and "no source row changed" in result.skip_reason.skip_message


def test_inserts_updates_and_deletes_become_runs_that_bring_the_store_up_to_date(settings, store):
    store.upsert_source(
        [
            source_row("a/one", "a parser", when="2020-01-05"),
            source_row("a/two", "a game", when="2020-02-07"),
            source_row("a/three", "a compiler", when="2023-07-01"),
        ]
    )
    with dg.instance_for_test() as instance:
        first = tick(settings, instance)
        assert ranges(first) == [("2020-01-01", "2020-02-01"), ("2023-07-01", "2023-07-01")]
        for request in first.run_requests:
            execute(settings, instance, request)
        assert store.status(store.active_space())["pending"] == 0
        assert tick(settings, instance, first.cursor).run_requests == []  # read once

        store.upsert_source([source_row("a/one", "a faster parser", when="2020-01-05")])
        store.execute(sql.SQL("DELETE FROM {} WHERE full_name = 'a/three'").format(store.source))
        second = tick(settings, instance, first.cursor)
        assert ranges(second) == [("2020-01-01", "2020-01-01"), ("2023-07-01", "2023-07-01")]
        for request in second.run_requests:
            execute(settings, instance, request)
    status = store.status(store.active_space())
    assert (status["repositories"], status["pending"]) == (2, 0)
    assert status["embeddings"] == status["chunks"]  # the deleted row's vectors are gone
    texts = [
        row[0] for row in store.execute(sql.SQL("SELECT text FROM {}").format(store.t("chunks")))
    ]
    assert any("a faster parser" in text for text in texts)


def test_stars_only_changes_cause_no_run(settings, store):
    store.upsert_source([source_row("a/one", stars=3)])
    with dg.instance_for_test() as instance:
        cursor = tick(settings, instance).cursor
        store.upsert_source([source_row("a/one", stars=30_000)])
        assert tick(settings, instance, cursor).run_requests == []


def test_a_burst_over_hundreds_of_months_is_a_few_range_runs(settings, store):
    months = [f"{year}-{month:02d}-11" for year in range(2010, 2024) for month in (1, 4, 7, 10)]
    store.upsert_source([source_row(f"o/r{i}", when=when) for i, when in enumerate(months)])
    with dg.instance_for_test() as instance:
        result = tick(settings, instance)
    got = ranges(result)
    assert len(got) <= MAX_RUNS_PER_TICK
    keys = monthly_partitions(settings).get_partition_keys()
    covered = {k for first, last in got for k in keys[keys.index(first) : keys.index(last) + 1]}
    assert {m[:8] + "01" for m in months} <= covered
    assert len({r.run_key for r in result.run_requests}) == len(got)


def test_daily_schedule_asks_for_the_newest_month():
    when = datetime(2026, 3, 14, 2, 15, tzinfo=UTC)
    daily = build_definitions(Settings()).resolve_schedule_def(
        "repositories_daily_newest_partition"
    )
    request = daily(dg.build_schedule_context(scheduled_execution_time=when))
    assert request.partition_key == "2026-03-01"


def test_weekly_reconciliation_is_one_run_over_every_month(settings, store):
    when = datetime(2026, 3, 14, 4, 30, tzinfo=UTC)
    weekly = build_definitions(settings).resolve_schedule_def("repositories_weekly_reconciliation")
    request = weekly(dg.build_schedule_context(scheduled_execution_time=when))
    keys = monthly_partitions(settings).get_partition_keys(current_time=when)
    assert (
        (request.tags[START], request.tags[END]) == (keys[0], keys[-1]) == (keys[0], "2026-03-01")
    )
    # A row no trigger saw (triggers off, as in a restored dump) is repaired by it.
    store.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(store.source))
    store.upsert_source(
        [source_row("quiet/row", "written behind the log's back", when="2019-09-09")]
    )
    store.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(store.source))
    with dg.instance_for_test() as instance:
        assert tick(settings, instance).run_requests == []
        execute(settings, instance, request)
    status = store.status(store.active_space())
    assert (status["repositories"], status["pending"]) == (1, 0)


def test_the_cluster_index_follows_runs_that_leave_most_months_unmaterialised(settings, store):
    """Declarative automation: after a sensor run over a range of months (others never
    materialised, as most are empty), the cluster index is requested, once; not after a run
    whose blocking embeddings check failed."""
    store.upsert_source(
        [
            source_row("a/one", "a parser", when="2020-01-05"),
            source_row("a/two", "a game", when="2020-02-07"),
        ]
    )
    defs = build_definitions(settings)
    cluster_index = asset_key("cluster_index")
    with dg.instance_for_test() as instance:
        before = dg.evaluate_automation_conditions(defs, instance)
        assert before.get_num_requested(cluster_index) == 0  # nothing upstream yet
        request = tick(settings, instance).run_requests[0]
        assert (request.tags[START], request.tags[END]) == ("2020-01-01", "2020-02-01")
        execute(settings, instance, request)
        after = dg.evaluate_automation_conditions(defs, instance, cursor=before.cursor)
        assert after.total_requested == 1 and after.get_num_requested(cluster_index) == 1
        again = dg.evaluate_automation_conditions(defs, instance, cursor=after.cursor)
        assert again.total_requested == 0

        # A zero vector written behind the store's back (February's repository keeps its text,
        # so no run rewrites it): the blocking `no_zero_vectors` check fails.
        space = store.active_space()
        store.execute(
            sql.SQL(
                "UPDATE {} SET embedding = array_fill(0, ARRAY[{}])::vector "
                "WHERE chunk_id = 'a/two#0'"
            ).format(store.t(space.table), sql.Literal(space.dimensions))
        )
        store.upsert_source([source_row("a/one", "a faster parser", when="2020-01-05")])
        run = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={START: "2020-01-01", END: "2020-02-01"},
            asset_selection=[asset_key(a) for a in ("rows", "chunks", "embeddings")],
        )
        failed = [e.check_name for e in run.get_asset_check_evaluations() if not e.passed]
        assert "no_zero_vectors" in failed
        blocked = dg.evaluate_automation_conditions(defs, instance, cursor=again.cursor)
        assert blocked.get_num_requested(cluster_index) == 0
