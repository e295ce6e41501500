"""`embed-assets sync`: one Dagster run over the range of partitions whose source rows changed (or
that hold pending work), recorded in the instance like any run launched from the UI."""

import os
import time
import uuid
from collections.abc import Callable

import dagster as dg

from embed_assets.components.assets import monthly_partitions
from embed_assets.components.sensors import range_tags
from embed_assets.definitions import build_definitions
from embed_assets.lib.changes import ChangeCursor, read_changes, record_reader
from embed_assets.lib.database import database_url
from embed_assets.lib.providers import opened_provider, space_name
from embed_assets.lib.settings import Settings
from embed_assets.lib.store import Space, Store, open_store

SYNC_CURSOR = "sync"
COLLECTION = "repositories"  # the one collection this release's CLI drives
PARTITIONED_ASSETS = ("rows", "chunks", "embeddings")
# A run over a range of months records, per asset, one planned event and one materialisation per
# month. Two Dagster settings (off by default) store those in batches and plan the range as one
# event. The cost: a failed sync run does not mark each of its partitions failed in the UI (the run
# itself shows failed, and the next sync retries it).
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# A sync killed with SIGKILL never ends its run, which would keep its slot in the
# `embedding_provider` pool for ever: the next sync ends it (end_runs_of_dead_processes).
LAUNCHER_TAG, LIVENESS_TAG, PID_TAG = (
    "embed_assets/launcher",
    "embed_assets/liveness",
    "embed_assets/pid",
)
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class SyncError(RuntimeError):
    pass


def changed_partition_keys(settings: Settings, space: Space) -> tuple[ChangeCursor, list[str]]:
    """The cursor past the changes read, and the partition keys with changes since the last sync
    or with pending work (chunks without a vector, e.g. after a refused vector or a model
    switch)."""
    with open_store(database_url(settings), settings) as store:
        store.ensure_space(space)
        changes = read_changes(store, ChangeCursor.from_text(store.cursor(SYNC_CURSOR)))
        months = changes.months | set(store.pending_months(space))
    valid = set(monthly_partitions(settings).get_partition_keys())
    return changes.cursor, sorted({m.strftime("%Y-%m-%d") for m in months} & valid)


def sync(
    settings: Settings,
    instance: dg.DagsterInstance,
    *,
    clusters: bool = True,
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
    """Materialise the changed partition range in one run (with the cluster index unless
    `clusters` is False) and report what it did; with nothing changed, start no run.
    `progress` is told what is about to happen (the CLI prints it on stderr)."""
    began = time.perf_counter()
    with opened_provider(settings) as provider:
        space = Space(
            space_name(provider.model, provider.dimensions), provider.model, provider.dimensions
        )
    progress("reading the change log")
    cursor, keys = changed_partition_keys(settings, space)
    report = {"partitions": 0, "changed_partitions": len(keys), "embedded": 0, "deleted": 0}
    if keys:
        all_keys = monthly_partitions(settings).get_partition_keys()
        first, last = keys[0], keys[-1]
        progress(
            f"{len(keys)} months with changes: one Dagster run over {first[:7]}..{last[:7]}"
            + (" with the cluster index" if clusters else "")
        )
        selection = None if clusters else [asset_key(a) for a in PARTITIONED_ASSETS]
        liveness = f"embed_assets.sync.{uuid.uuid4().hex}"
        with open_store(database_url(settings), settings) as store, store.lock(liveness):
            end_runs_of_dead_processes(instance, store)
            result = _run(
                settings,
                instance,
                selection,
                range_tags(first, last)
                | {LAUNCHER_TAG: "sync", LIVENESS_TAG: liveness, PID_TAG: str(os.getpid())},
            )
        report["partitions"] = all_keys.index(last) - all_keys.index(first) + 1
        embedded = _metadata(result, "embeddings")
        report["embedded"] = embedded["embedded"]
        report["deleted"] = embedded["deleted"]
        report["run_id"] = result.run_id
        report["asset_seconds"] = {
            asset: round(_metadata(result, asset)["seconds"], 3)
            for asset in PARTITIONED_ASSETS + ("cluster_index",)
            if clusters or asset != "cluster_index"
        }
        if clusters:
            report["clusters"] = _metadata(result, "cluster_index")["clusters"]
    with open_store(database_url(settings), settings) as store:
        record_reader(store, SYNC_CURSOR, cursor)
        report["unchanged"] = store.count_vectors(space) - report["embedded"]
    report["seconds"] = round(time.perf_counter() - began, 3)
    return report


def materialise_cluster_index(settings: Settings, instance: dg.DagsterInstance) -> dict:
    """One run of the cluster index alone (after `spaces activate`), recorded like any run."""
    return _metadata(_run(settings, instance, [asset_key("cluster_index")]), "cluster_index")


def asset_key(asset: str, collection: str = COLLECTION) -> dg.AssetKey:
    """The key of one of a collection's assets (rows, chunks, embeddings, cluster_index)."""
    return dg.AssetKey([collection, asset])


def _run(
    settings: Settings,
    instance: dg.DagsterInstance,
    selection: list | None,
    tags: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """One in-process run of the asset job over `selection` (None: every asset); a failure
    raises SyncError naming the failing step's error."""
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=QUIET,
        asset_selection=selection,
        tags=tags,
    )
    if not result.success:
        raise SyncError(f"run {result.run_id} failed: {_failure(result)}")
    return result


def end_runs_of_dead_processes(instance: dg.DagsterInstance, store: Store) -> list[str]:
    """Mark failed the unfinished runs of syncs whose process is gone, and free their pool slots.
    A sync holds a session advisory lock named in its run's tags for as long as it runs: a lock
    that can be taken belongs to a process that is gone, on any machine. Their writes were
    transactions: nothing half-done stays in the store."""
    ended = []
    for run in instance.get_runs(
        filters=dg.RunsFilter(statuses=UNFINISHED, tags={LAUNCHER_TAG: "sync"})
    ):
        with store.try_lock(run.tags.get(LIVENESS_TAG, "")) as gone:
            if gone:
                instance.report_run_failed(
                    run,
                    f"the embed-assets sync running it is gone (process {run.tags.get(PID_TAG)})",
                )
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
                ended.append(run.run_id)
    return ended


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """An asset's metadata in the run (each month of a range carries the same)."""
    event = result.asset_materializations_for_node(asset_key(asset).to_python_identifier())[0]
    return {key: value.value for key, value in event.metadata.items()}


def _failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            return f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
    return next((e.message for e in result.all_events if e.is_failure), "unknown error")
