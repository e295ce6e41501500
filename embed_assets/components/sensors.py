"""Runs that a collection's new source rows drive: a sensor on its change log, a daily run of the
newest month and a weekly reconciliation over every month (cheap: each run only does what
changed)."""

import hashlib

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from embed_assets.components.assets import CollectionAssets
from embed_assets.defs.resources import DatabaseResource
from embed_assets.lib.changes import ChangeCursor, partition_ranges, read_changes

MAX_RUNS_PER_TICK = 3  # a burst over hundreds of months becomes at most this many range runs
MAX_CHANGES_PER_TICK = 200_000  # sensor evaluations time out at 60 s; the rest waits a tick


def range_tags(first: str, last: str) -> dict[str, str]:
    """Tags that make one run cover the partitions first..last (the assets' single-run policy)."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def collection_sensors(
    assets: CollectionAssets,
) -> tuple[dg.SensorDefinition, dg.ScheduleDefinition, dg.ScheduleDefinition]:
    """The change-log sensor and the daily and weekly schedules of a collection's partitioned
    assets."""
    partitioned = dg.AssetSelection.assets(*assets.partitioned)
    monthly = assets.monthly
    table = assets.source.table_spec
    polled = table is not None and not table.triggers

    def requests(tick: str, months: set[str], context) -> list[dg.RunRequest]:
        """Runs over the ranges of `months` (one run when the collection has no partitions)."""
        if not assets.monthly_partitioned:
            return [dg.RunRequest(run_key=f"changes-{tick}")]
        all_keys = monthly.get_partition_keys()
        if outside := sorted(months - set(all_keys)):
            # A row dated after the current month (or before the first): no partition holds it yet.
            context.log.warning(
                f"changes in months with no partition, left to the daily and weekly "
                f"runs: {', '.join(outside[:5])}"
            )
        return [
            dg.RunRequest(run_key=f"changes-{tick}-{first}-{last}", tags=range_tags(first, last))
            for first, last in partition_ranges(months, all_keys, MAX_RUNS_PER_TICK)
        ]

    @dg.sensor(
        name=f"{assets.name}_new_source_rows",
        target=partitioned,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
    )
    def new_source_rows(context: dg.SensorEvaluationContext, database: DatabaseResource):
        """Inserted, updated (embedded columns only: not stars) and deleted source rows since the
        cursor, from the `source_changes` log that triggers on the source table fill: one run per
        range of months that hold them, at most a few per tick. The cursor is exact: a change
        committed late with a lower id is still read (embed_assets.lib.changes). A change that
        a sync's run handled first is gone from the log: no run is asked for it."""
        if polled:
            return poll(context, database)
        cursor = ChangeCursor.from_text(context.cursor)
        with database.open(table) as store:
            assets.source.refresh_changes(store)  # a files collection scans its folder
            changes = read_changes(store, cursor, MAX_CHANGES_PER_TICK)
        if not changes.count:
            return dg.SensorResult(
                skip_reason=dg.SkipReason(f"no source row changed since change #{cursor.position}"),
                cursor=changes.cursor.to_text(),
            )
        # Keyed by both cursors: a tick that only reads late ids below the position must not
        # reuse the key (and so be skipped) of an earlier tick over the same months.
        tick = hashlib.sha1((cursor.to_text() + changes.cursor.to_text()).encode()).hexdigest()[:12]
        runs = requests(tick, {m.strftime("%Y-%m-%d") for m in changes.months}, context)
        context.log.info(
            f"{changes.count} changes in {len(changes.months)} months: {len(runs)} runs"
        )
        return dg.SensorResult(run_requests=runs, cursor=changes.cursor.to_text())

    def poll(context: dg.SensorEvaluationContext, database: DatabaseResource):
        """A view (or a table the project may not alter): the months whose rows differ from the
        stored ones, by hash. The same difference seen again (its run not done yet) has the same
        run keys, so it asks for no second run."""
        with database.open(table) as store:
            months, fingerprint = store.changed_months_by_hash(table)
        if not months:
            return dg.SensorResult(
                skip_reason=dg.SkipReason("the source and the stored rows agree")
            )
        runs = requests(fingerprint, {m.strftime("%Y-%m-%d") for m in months}, context)
        context.log.info(f"{len(months)} months differ from the source: {len(runs)} runs")
        return dg.SensorResult(run_requests=runs)

    @dg.schedule(
        name=f"{assets.name}_daily_newest_partition",
        cron_schedule="15 2 * * *",
        target=partitioned,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def daily_newest_partition(context: dg.ScheduleEvaluationContext):
        """The current month, every night: rows written where no trigger could see them (a restored
        dump, a table swapped in) still reach the store within a day."""
        if not assets.monthly_partitioned:
            return dg.RunRequest()
        keys = monthly.get_partition_keys(current_time=context.scheduled_execution_time)
        return dg.RunRequest(partition_key=keys[-1])

    @dg.schedule(
        name=f"{assets.name}_weekly_reconciliation",
        cron_schedule="30 4 * * 6",
        target=partitioned,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def weekly_reconciliation(context: dg.ScheduleEvaluationContext):
        """Every month in one run, every week: repairs what a missed sensor tick, a stopped
        daemon or an external write left behind. Incremental, so a run that finds everything in
        place embeds nothing and writes nothing."""
        if not assets.monthly_partitioned:
            return dg.RunRequest()
        keys = monthly.get_partition_keys(current_time=context.scheduled_execution_time)
        return dg.RunRequest(tags=range_tags(keys[0], keys[-1]))

    return new_source_rows, daily_newest_partition, weekly_reconciliation
