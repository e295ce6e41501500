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

from embed_assets.components.collection import collection_definitions, sync_job_name
from embed_assets.components.sensors import range_tags
from embed_assets.defs.resources import shared_definitions
from embed_assets.lib.collections import Collection
from embed_assets.lib.database import database_url
from embed_assets.lib.errors import Failure
from embed_assets.lib.plan import SyncPlan, month_keys, plan_sync
from embed_assets.lib.settings import Settings
from embed_assets.lib.sources.base import SourceKind
from embed_assets.lib.sources.repositories import REPOSITORIES
from embed_assets.lib.store import Store, open_store

PARTITIONED_ASSETS = ("rows", "chunks", "embeddings")
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
# The one tag a sync adds to its runs, for the person reading the runs list: which process ran it.
LAUNCHED_BY_TAG = "embed_assets/launched_by"
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def launched_by(pid: int) -> str:
    return f"embed-assets sync, process {pid}"


def _liveness_lock(run_id: str) -> str:
    """The session advisory lock a sync holds while its run runs."""
    return f"embed_assets.sync.{run_id}"


class SyncError(Failure):
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


def sync(
    settings: Settings,
    instance: dg.DagsterInstance,
    *,
    clusters: bool = True,
    progress: Callable[[str], None] = lambda message: None,
    target: Target = REPOSITORIES_TARGET,
    plan: SyncPlan | None = None,
) -> dict:
    """Materialise the changed partition range of a collection in one run of its `<name>_sync`
    job (with the cluster index unless `clusters` is False) and report what it did; with
    nothing changed, start no run. `plan`: what `plan_sync` found, when the caller has it.
    `progress` is told what is about to happen (the CLI prints it on stderr)."""
    if plan is None:
        progress("reading the change log")
        plan = plan_sync(settings, target.source, target.by_month)
    keys = plan.keys
    if not keys:
        return plan.idle_report()
    tags = {}
    if target.by_month:
        all_keys = month_keys(settings.partition_start_date)
        first, last = keys[0], keys[-1]
        tags = range_tags(first, last)
        span = f"{len(keys)} months with changes: one Dagster run over {first[:7]}..{last[:7]}"
    else:
        span = "changes: one Dagster run over every row"
    progress(span + (" with the cluster index" if clusters else ""))
    selection = None if clusters else [target.key(a) for a in PARTITIONED_ASSETS]
    run_id = str(uuid.uuid4())
    with target.open(settings) as store, store.lock(_liveness_lock(run_id)):
        end_runs_of_dead_processes(instance, store)
        result = _run(
            target,
            target.definitions(settings),
            instance,
            selection,
            tags | {LAUNCHED_BY_TAG: launched_by(os.getpid())},
            run_id,
        )
    report = {
        "partitions": all_keys.index(last) - all_keys.index(first) + 1 if target.by_month else 1,
        "changed_partitions": len(keys),
    }
    embedded = _totals(result, target.key("embeddings"))
    report["embedded"] = embedded["embedded"]
    report["deleted"] = embedded["deleted"]
    report["run_id"] = result.run_id
    report["asset_seconds"] = {
        asset: round(_totals(result, target.key(asset))["seconds"], 3)
        for asset in PARTITIONED_ASSETS + ("cluster_index",)
        if clusters or asset != "cluster_index"
    }
    if clusters:
        report["clusters"] = _totals(result, target.key("cluster_index"))["clusters"]
    with target.open(settings) as store:
        report["unchanged"] = store.count_vectors(plan.space) - report["embedded"]
    report["seconds"] = round(time.perf_counter() - plan.began, 3)
    return report


def materialise_cluster_index(
    settings: Settings, instance: dg.DagsterInstance, target: Target = REPOSITORIES_TARGET
) -> dict:
    """One run of the cluster index alone (after `spaces activate`), recorded like any run."""
    key = target.key("cluster_index")
    return _totals(_run(target, target.definitions(settings), instance, [key]), key)


def _run(
    target: Target,
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    selection: list | None,
    tags: dict | None = None,
    run_id: str | None = None,
) -> dg.ExecuteInProcessResult:
    """One in-process run of the collection's sync job over `selection` (None: every asset); a
    failure raises SyncError naming the failing step's error."""
    job = definitions.resolve_job_def(sync_job_name(target.name))
    with _batched_events():
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=QUIET,
            asset_selection=selection,
            tags=tags,
            run_id=run_id,
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
    A sync holds a session advisory lock named after its run for as long as it runs: a lock
    that can be taken belongs to a process that is gone, on any machine. Their writes were
    transactions: nothing half-done stays in the store."""
    ended = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        if LAUNCHED_BY_TAG not in run.tags:
            continue
        with store.try_lock(_liveness_lock(run.run_id)) as gone:
            if gone:
                instance.report_run_failed(
                    run, f"the process that ran it is gone ({run.tags[LAUNCHED_BY_TAG]})"
                )
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
                ended.append(run.run_id)
    return ended


def _totals(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    """An asset's figures for the whole run: a run over several months records them once, as an
    observation beside each month's own materialisation; a run over one window in its
    materialisation."""
    node = key.to_python_identifier()
    event = (
        result.asset_observations_for_node(node) or result.asset_materializations_for_node(node)
    )[0]
    return {name: value.value for name, value in event.metadata.items()}


def _failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            return f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
    return next((e.message for e in result.all_events if e.is_failure), "unknown error")
