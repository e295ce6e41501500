"""What a sync has to do, found without Dagster: the partitions whose source rows changed (the
change log, or a hash diff for a polled source) or that hold pending work. `embed-assets sync`
imports Dagster only when this finds work."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

from embed_assets.lib.database import database_url
from embed_assets.lib.providers import opened_provider, space_name
from embed_assets.lib.settings import Settings
from embed_assets.lib.sources.base import SourceKind
from embed_assets.lib.store import Space, open_store

ALL = "all"  # the one window of a collection with no partitions


def month_keys(start: date, now: datetime | None = None) -> list[str]:
    """The keys of the assets' monthly partitions: each month from the first one starting on or
    after `start` through the current one (UTC), as Dagster's MonthlyPartitionsDefinition with
    end_offset=1 names them."""
    now = now or datetime.now(UTC)
    year, month = (start.year, start.month) if start.day == 1 else _next(start.year, start.month)
    keys = []
    while (year, month) <= (now.year, now.month):
        keys.append(f"{year:04d}-{month:02d}-01")
        year, month = _next(year, month)
    return keys


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


@dataclass(frozen=True)
class SyncPlan:
    space: Space  # of the configured provider
    keys: list[str]  # partition keys with work, oldest first; [ALL] for a collection without
    by_month: bool
    began: float  # perf_counter when planning began: the sync's seconds count from it
    vectors: int | None  # in the space, counted when there is no work (the idle report's)

    def idle_report(self) -> dict:
        """The report of a sync that found nothing to do."""
        return {
            "partitions": 0,
            "changed_partitions": 0,
            "embedded": 0,
            "deleted": 0,
            "unchanged": self.vectors,
            "seconds": round(time.perf_counter() - self.began, 3),
        }


def plan_sync(settings: Settings, source: SourceKind, by_month: bool) -> SyncPlan:
    """The partitions of a collection with changes not yet handled (the rows step of a run
    takes its window's changes out of the log, whoever started the run) or pending work."""
    began = time.perf_counter()
    with opened_provider(settings) as provider:
        space = Space(
            space_name(provider.model, provider.dimensions), provider.model, provider.dimensions
        )
    spec = source.table_spec
    with open_store(database_url(settings), settings, spec) as store:
        store.ensure_space(space)
        if spec is not None and not spec.triggers:
            months = set(store.changed_months_by_hash(spec)[0])
        else:
            source.refresh_changes(store)  # a files collection scans its folder
            months = set(store.logged_change_months())
        months |= set(store.pending_months(space))
        if not by_month:
            keys = [ALL] if months else []
        else:
            valid = set(month_keys(settings.partition_start_date))
            keys = sorted({m.strftime("%Y-%m-%d") for m in months} & valid)
        # The idle report's count, on this connection: a no-op sync opens no other.
        vectors = None if keys else store.count_vectors(space)
    return SyncPlan(space, keys, by_month, began, vectors)
