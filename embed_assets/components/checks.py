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
from dataclasses import dataclass

import dagster as dg

from embed_assets.components.assets import CollectionAssets
from embed_assets.defs.resources import DatabaseResource
from embed_assets.lib import quality
from embed_assets.lib.quality import ERROR, WARN
from embed_assets.lib.store import TableSpec

HISTORY = 10  # executions read per check to find its latest result (in-progress ones are skipped)


@dataclass(frozen=True)
class Check:
    name: str
    evaluate: Callable[[quality.Scope], quality.Outcome]
    severity: str  # of a failure, as declared; an outcome may say WARN for a lesser failure
    blocking: bool
    description: str


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


REPOSITORY_CHECKS = [
    Check(
        "rejected_ratio",
        quality.rejected_ratio,
        ERROR,
        False,
        "Source rows rejected by validation are at most EMBED_ASSETS_CHECK_MAX_REJECTED_RATIO "
        "of the window's rows",
    ),
    Check(
        "required_fields",
        quality.required_fields,
        ERROR,
        False,
        "Every repository has an owner/name and an http(s) URL",
    ),
    Check(
        "no_duplicate_names",
        quality.duplicate_names,
        WARN,
        False,
        "No two repositories have names equal up to case",
    ),
]
CHUNK_CHECKS = [
    Check("no_empty_chunks", quality.no_empty_chunks, ERROR, False, "Every chunk has text"),
    Check(
        "chunk_sizes",
        quality.chunk_sizes,
        WARN,
        False,
        "Every chunk has at most EMBED_ASSETS_CHUNK_CHARS characters",
    ),
    Check(
        "repositories_chunked",
        quality.repositories_chunked,
        ERROR,
        False,
        "Every repository has at least one chunk",
    ),
]
EMBEDDING_CHECKS = [
    Check(
        "vector_dimensions",
        quality.vector_dimensions,
        ERROR,
        True,
        "Every vector has the embedding space's dimensions",
    ),
    Check(
        "finite_vectors",
        quality.finite_vectors,
        ERROR,
        True,
        "No stored vector holds NaN or inf (WARN when the provider sent some and they were "
        "refused)",
    ),
    Check(
        "no_zero_vectors",
        quality.no_zero_vectors,
        ERROR,
        True,
        "No stored vector is zero (WARN when the provider sent some and they were refused)",
    ),
    Check(
        "vector_norms",
        quality.vector_norms,
        ERROR,
        True,
        "Every vector's norm is within EMBED_ASSETS_CHECK_MIN_NORM..EMBED_ASSETS_CHECK_MAX_NORM",
    ),
    Check(
        "coverage",
        quality.coverage,
        ERROR,
        True,
        "Every chunk has a vector of its current text in the active space (WARN when the "
        "missing ones were refused and stay pending)",
    ),
    Check(
        "no_orphan_vectors",
        quality.no_orphan_vectors,
        ERROR,
        True,
        "Every vector belongs to an existing chunk",
    ),
    Check(
        "refused_vectors",
        quality.refused_vectors,
        ERROR,
        False,
        "The provider returned no vector that validation had to refuse (not blocking: the "
        "store stays clean; this is the one that alerts)",
    ),
]

# The whole active space (cluster_index is not partitioned); none blocks: nothing is downstream.
CLUSTER_CHECKS = [
    Check(
        "every_vector_assigned",
        quality.every_vector_assigned,
        ERROR,
        False,
        "Every repository with a first-chunk vector in the active space is in a cluster (or "
        "was removed by an operator), by its current vector",
    ),
    Check(
        "no_empty_clusters",
        quality.no_empty_clusters,
        ERROR,
        False,
        "No cluster is empty, and each cluster's size is its member count",
    ),
    Check(
        "cluster_sizes",
        quality.cluster_sizes,
        WARN,
        False,
        "The largest cluster holds at most EMBED_ASSETS_CHECK_MAX_CLUSTER_SHARE of all members",
    ),
    Check(
        "hnsw_recall",
        quality.hnsw_recall,
        ERROR,
        False,
        "Searches through the HNSW index find what exact search finds: recall@10 over sampled "
        "stored vectors at least EMBED_ASSETS_CHECK_MIN_RECALL (WARN below it, ERROR below "
        "EMBED_ASSETS_CHECK_ERROR_RECALL)",
    ),
]


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
    # The repositories kind validates its rows; a table's rows are what its columns say.
    rows = [asset_checks(assets.rows, REPOSITORY_CHECKS, chunk_chars)] if table is None else []
    return rows + [
        asset_checks(assets.chunks, CHUNK_CHECKS, chunk_chars, table),
        asset_checks(assets.embeddings, [*EMBEDDING_CHECKS, freshness], chunk_chars, table),
        asset_checks(assets.cluster_index, CLUSTER_CHECKS, chunk_chars, table),
    ]


def latest_results(
    instance: dg.DagsterInstance, check_keys: Iterable[dg.AssetCheckKey]
) -> list[dict]:
    """The latest result of each check: {"asset", "name", "partition", "passed", "severity"};
    `passed` and `severity` are None for a check with no result yet. `partition` is the check's
    Dagster partition, else the partitions it evaluated (a key or `first...last`), else None."""
    results = []
    for key in sorted(check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        record = next(
            (
                r
                for r in instance.event_log_storage.get_asset_check_execution_history(
                    key, limit=HISTORY
                )
                if r.status.value in ("SUCCEEDED", "FAILED") and r.event
            ),
            None,
        )
        evaluation = record.event.dagster_event.event_specific_data if record else None
        partition = record.partition if record else None
        if partition is None and evaluation is not None:
            window = evaluation.metadata.get("partitions")
            partition = window.value if window is not None and window.value != "all" else None
        results.append(
            {
                "asset": key.asset_key.to_user_string(),
                "name": key.name,
                "partition": partition,
                "passed": evaluation.passed if evaluation else None,
                "severity": evaluation.severity.value if evaluation else None,
            }
        )
    return results
