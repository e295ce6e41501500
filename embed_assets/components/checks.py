"""Asset checks on every asset. What each check decides is in `embed_assets.lib.quality` (the SQL in
`Store.check_*`); this module only declares them to Dagster.

One `multi_asset_check` per asset (one step per asset in a run, not one per check), subsettable so
the UI can run a single check. A check evaluates the time window of the run's partitions (one key
or a range: the assets run ranges in one run), or the whole space when run outside a partitioned
run; its metadata says which (`partitions`) and lists the partitions holding bad rows.
Checks are not Dagster-partitioned: see the note on `run_window`.

ERROR checks on `embeddings` are blocking: a failure stops what is downstream (the cluster index)
in the same run. Another asset's checks are `asset_checks(asset, [Check(...), ...])`.
"""

from collections.abc import Callable, Iterable

import dagster as dg

from embed_assets.components.assets import CollectionAssets
from embed_assets.defs.resources import DatabaseResource
from embed_assets.lib import quality
from embed_assets.lib.checks import Check, store_checks
from embed_assets.lib.quality import WARN
from embed_assets.lib.store import TableSpec


def run_window(
    context: dg.AssetCheckExecutionContext, partitions_def: dg.PartitionsDefinition | None
) -> quality.Window:
    """The run's partitions of the checked asset as a time window (one key or a range), else the
    whole space (a run with no partition, or an asset not partitioned by time).

    Dagster 1.13 can partition a check (`partitions_def=`, a preview), but a run over a range of
    partitions (BackfillPolicy.single_run, `embed-assets sync`) records one result with no
    partition for it, while planning one per partition that stay unresolved; one result per
    partition would be an unbatched event per partition and check (measured: +4 s on a 93-month
    run). So checks are per run: their window is the run's partitions. The window is computed from
    the asset's partitions, not the run's job: a job of checks alone has no partitions."""
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition) or not (
        context.has_partition_key or context.has_partition_key_range
    ):
        return quality.Window()
    keys = context.partition_key_range
    label = keys.start if keys.start == keys.end else f"{keys.start}...{keys.end}"
    return quality.Window(
        partitions_def.time_window_for_partition_key(keys.start).start,
        partitions_def.time_window_for_partition_key(keys.end).end,
        label,
    )


def _metadata(values: dict) -> dict:
    metadata = {}
    for key, value in values.items():
        if isinstance(value, list):
            metadata[key] = dg.MetadataValue.md("\n".join(f"- `{v}`" for v in value))
        elif isinstance(value, float):
            metadata[key] = dg.MetadataValue.float(value)
        else:
            metadata[key] = value
    return metadata


def asset_checks(
    asset: dg.AssetsDefinition,
    checks: Iterable[Check],
    chunk_chars: int,
    table: TableSpec | None = None,
) -> dg.AssetChecksDefinition:
    """One subsettable multi-asset check evaluating `checks` of `asset` with one connection."""
    checks = list(checks)
    key = asset.key
    specs = [
        dg.AssetCheckSpec(
            c.name,
            asset=key,
            blocking=c.blocking,
            description=f"{c.description} ({c.severity}" + (", blocking)" if c.blocking else ")"),
            metadata={"severity": c.severity},
        )
        for c in checks
    ]

    @dg.multi_asset_check(specs=specs, name=f"{key.to_python_identifier()}_checks", can_subset=True)
    def _checks(context: dg.AssetCheckExecutionContext, database: DatabaseResource):
        selected = {k.name for k in context.selected_asset_check_keys if k.asset_key == key}
        with database.open(table) as store:
            scope = quality.Scope(
                store,
                run_window(context, asset.partitions_def),
                quality.QualitySettings.from_env(),
                chunk_chars=chunk_chars,
                instance=context.instance,
            )
            for check in checks:
                if check.name in selected:
                    outcome = check.evaluate(scope)
                    yield dg.AssetCheckResult(
                        asset_key=key,
                        check_name=check.name,
                        passed=outcome.passed,
                        severity=dg.AssetCheckSeverity(outcome.severity),
                        description=outcome.description,
                        metadata=_metadata(outcome.metadata),
                    )

    return _checks


def freshness_of(embeddings: dg.AssetKey) -> Callable[[quality.Scope], quality.Outcome]:
    """The check of when the newest partition of `embeddings` was materialised."""

    def freshness(scope: quality.Scope) -> quality.Outcome:
        instance: dg.DagsterInstance = scope.instance
        partitions = instance.get_materialized_partitions(embeddings)
        # No partitions (a files collection, a table with no time column): its one window.
        newest = max(partitions) if partitions else None
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=embeddings, asset_partitions=[newest] if newest else None
            ),
            limit=1,
        ).records
        at = records[0].timestamp if records else None
        if newest is None and records and records[0].partition_key is None:
            newest = "all"
        return quality.freshness(newest, at, scope.settings)

    return freshness


def collection_checks(assets: CollectionAssets) -> list[dg.AssetChecksDefinition]:
    """The checks of a collection's four assets."""
    freshness = Check(
        "freshness",
        freshness_of(assets.embeddings.key),
        WARN,
        False,
        "The newest partition was materialised within EMBED_ASSETS_CHECK_MAX_AGE_HOURS",
    )
    chunk_chars, table = assets.settings.chunk_chars, assets.source.table_spec
    by_asset = store_checks(repositories=table is None)
    by_asset["embeddings"] = [*by_asset["embeddings"], freshness]
    return [
        asset_checks(getattr(assets, name), checks, chunk_chars, table)
        for name, checks in by_asset.items()
    ]
