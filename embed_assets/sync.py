"""`embed-assets sync`: one Dagster run over the range of partitions whose source rows changed (or
that hold pending work), recorded in the instance like any run launched from the UI."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg

from embed_assets.components.assets import monthly_partitions
from embed_assets.components.collection import collection_definitions
from embed_assets.components.sensors import range_tags
from embed_assets.defs.resources import shared_definitions
from embed_assets.lib.changes import ChangeCursor, read_changes, record_reader
from embed_assets.lib.collections import Collection
from embed_assets.lib.database import database_url
from embed_assets.lib.providers import opened_provider, space_name
from embed_assets.lib.settings import Settings
from embed_assets.lib.sources.base import SourceKind
from embed_assets.lib.sources.repositories import REPOSITORIES
from embed_assets.lib.store import Space, Store, open_store

SYNC_CURSOR = "sync"
PARTITIONED_ASSETS = ("rows", "chunks", "embeddings")
ALL = "all"  # the one window of a collection with no partitions
# A run over a range of months records, per asset, one planned event and one materialisation per
# month. Two Dagster settings (off by default) store those in batches and plan the range as one
# event. The cost: a failed sync run does not mark each of its partitions failed in the UI (the run
# itself shows failed, and the next sync retries it).
# Set for the sync's own runs only (`_batched_events`): set at import, they changed every later
# run of the process, so that tests passed or failed by what an earlier test had imported.
BATCHED_EVENTS = {
    "DAGSTER_EVENT_BATCH_SIZE": "1000",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
}
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


@dataclass(frozen=True)
class Target:
    """The collection a sync drives: its name, its source and whether it has monthly
    partitions."""

    name: str
    source: SourceKind
    by_month: bool

    @classmethod
    def of(cls, collection: Collection, settings: Settings) -> Target:
        return cls(collection.name, collection.source_kind(settings), collection.by_month)

    def open(self, settings: Settings):
        return open_store(database_url(settings), settings, self.source.table_spec)

    def key(self, asset: str) -> dg.AssetKey:
        """The key of one of its assets (rows, chunks, embeddings, cluster_index)."""
        return dg.AssetKey([self.name, asset])

    def definitions(self, settings: Settings) -> dg.Definitions:
        """Its definitions alone, with the shared resources: a sync runs one collection."""
        return dg.Definitions.merge(
            collection_definitions(self.name, settings, self.source, self.by_month),
            shared_definitions(settings),
        )


REPOSITORIES_TARGET = Target("repositories", REPOSITORIES, True)


def changed_partition_keys(
    settings: Settings, space: Space, target: Target = REPOSITORIES_TARGET
) -> tuple[ChangeCursor | None, list[str]]:
    """The cursor past the changes read (None: a polled source has none), and the partition
    keys with changes since the last sync or with pending work (chunks without a vector, e.g.
    after a refused vector or a model switch); `ALL` for a collection with no partitions."""
    spec = target.source.table_spec
    with target.open(settings) as store:
        store.ensure_space(space)
        if spec is not None and not spec.triggers:
            cursor, months = None, set(store.changed_months_by_hash(spec)[0])
        else:
            target.source.refresh_changes(store)  # a files collection scans its folder
            changes = read_changes(store, ChangeCursor.from_text(store.cursor(SYNC_CURSOR)))
            cursor, months = changes.cursor, changes.months
        months |= set(store.pending_months(space))
    if not target.by_month:
        return cursor, [ALL] if months else []
    valid = set(monthly_partitions(settings).get_partition_keys())
    return cursor, sorted({m.strftime("%Y-%m-%d") for m in months} & valid)


def sync(
    settings: Settings,
    instance: dg.DagsterInstance,
    *,
    clusters: bool = True,
    progress: Callable[[str], None] = lambda message: None,
    target: Target = REPOSITORIES_TARGET,
) -> dict:
    """Materialise the changed partition range of a collection in one run (with the cluster
    index unless `clusters` is False) and report what it did; with nothing changed, start no
    run. `progress` is told what is about to happen (the CLI prints it on stderr)."""
    began = time.perf_counter()
    with opened_provider(settings) as provider:
        space = Space(
            space_name(provider.model, provider.dimensions), provider.model, provider.dimensions
        )
    progress("reading the change log")
    cursor, keys = changed_partition_keys(settings, space, target)
    report = {"partitions": 0, "changed_partitions": len(keys), "embedded": 0, "deleted": 0}
    if keys:
        tags = {}
        if target.by_month:
            all_keys = monthly_partitions(settings).get_partition_keys()
            first, last = keys[0], keys[-1]
            tags = range_tags(first, last)
            span = f"{len(keys)} months with changes: one Dagster run over {first[:7]}..{last[:7]}"
        else:
            span = "changes: one Dagster run over every row"
        progress(span + (" with the cluster index" if clusters else ""))
        selection = None if clusters else [target.key(a) for a in PARTITIONED_ASSETS]
        liveness = f"embed_assets.sync.{uuid.uuid4().hex}"
        with target.open(settings) as store, store.lock(liveness):
            end_runs_of_dead_processes(instance, store)
            result = _run(
                target.definitions(settings),
                instance,
                selection,
                tags | {LAUNCHER_TAG: "sync", LIVENESS_TAG: liveness, PID_TAG: str(os.getpid())},
            )
        report["partitions"] = (
            all_keys.index(last) - all_keys.index(first) + 1 if target.by_month else 1
        )
        embedded = _metadata(result, target.key("embeddings"))
        report["embedded"] = embedded["embedded"]
        report["deleted"] = embedded["deleted"]
        report["run_id"] = result.run_id
        report["asset_seconds"] = {
            asset: round(_metadata(result, target.key(asset))["seconds"], 3)
            for asset in PARTITIONED_ASSETS + ("cluster_index",)
            if clusters or asset != "cluster_index"
        }
        if clusters:
            report["clusters"] = _metadata(result, target.key("cluster_index"))["clusters"]
    with target.open(settings) as store:
        if cursor is not None:
            record_reader(store, SYNC_CURSOR, cursor)
        report["unchanged"] = store.count_vectors(space) - report["embedded"]
    report["seconds"] = round(time.perf_counter() - began, 3)
    return report


def materialise_cluster_index(
    settings: Settings, instance: dg.DagsterInstance, target: Target = REPOSITORIES_TARGET
) -> dict:
    """One run of the cluster index alone (after `spaces activate`), recorded like any run."""
    key = target.key("cluster_index")
    return _metadata(_run(target.definitions(settings), instance, [key]), key)


def _run(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    selection: list | None,
    tags: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """One in-process run of the asset job over `selection` (None: every asset); a failure
    raises SyncError naming the failing step's error."""
    job = definitions.resolve_implicit_global_asset_job_def()
    with _batched_events():
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


@contextmanager
def _batched_events() -> Iterator[None]:
    """BATCHED_EVENTS for the duration of a run, unless already set (by the user: kept)."""
    added = {name: value for name, value in BATCHED_EVENTS.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


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


def _metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    """An asset's metadata in the run (each month of a range carries the same)."""
    event = result.asset_materializations_for_node(key.to_python_identifier())[0]
    return {key: value.value for key, value in event.metadata.items()}


def _failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            return f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
    return next((e.message for e in result.all_events if e.is_failure), "unknown error")
