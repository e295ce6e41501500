"""What each asset does to a time window [start, end): plain functions over a Store.

Each step reads only what changed (the store finds it with hashes), writes in one transaction, and
returns a `StepResult`: each month's counts, so that a run over a range records every month's own,
and the figures of the step as a whole.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from embed_assets.lib.cache import EmbeddingCache
from embed_assets.lib.providers.base import EmbeddingProvider, space_name, vector_problems
from embed_assets.lib.settings import Settings
from embed_assets.lib.sources.base import SourceKind
from embed_assets.lib.sources.repositories import REPOSITORIES
from embed_assets.lib.store import Space, Store
from embed_assets.lib.store.base import month_of
from embed_assets.lib.text import bounded

PAGE_SIZE = 10_000  # chunks read, embedded and staged at a time: bounds memory for any backfill


@dataclass(frozen=True)
class StepResult(Mapping):
    """What a step did to a window. `months`: each month's counts, one dict per month with a
    count in it (every name of `fields`); `whole`: the figures of the step as a whole (seconds,
    provider calls, examples). As a mapping, the window's totals: the months' counts summed,
    with the whole step's figures."""

    fields: tuple[str, ...]
    months: dict[datetime, dict[str, int]]
    whole: dict

    @classmethod
    def of(cls, whole: dict, **by_month: Counter) -> StepResult:
        months = sorted({month for counts in by_month.values() for month in counts})
        return cls(
            tuple(by_month),
            {m: {name: int(c[m]) for name, c in by_month.items()} for m in months},
            whole,
        )

    def month(self, month: datetime) -> dict[str, int]:
        """The counts of one month: zeros for a month the step found nothing in."""
        return self.months.get(month, dict.fromkeys(self.fields, 0))

    def totals(self) -> dict:
        summed = {name: sum(m[name] for m in self.months.values()) for name in self.fields}
        return summed | self.whole

    def __getitem__(self, name: str):
        return self.totals()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.totals())

    def __len__(self) -> int:
        return len(self.fields) + len(self.whole)


def sync_rows(
    store: Store, start: datetime, end: datetime, source: SourceKind = REPOSITORIES
) -> StepResult:
    """Normalise and validate the source rows of the window that changed; drop vanished ones;
    take the window's changes out of the log."""
    began = time.perf_counter()
    with store.window_lock("rows", start, end), store.handling_changes(start, end):
        written = source.write_rows(store, start, end)
    rows_in = source.count_source(store, start, end)
    return StepResult.of(
        {
            "rejected_examples": [f"{key}: {reason}" for key, reason, _ in written.rejected[:5]],
            "seconds": time.perf_counter() - began,
        },
        rows_in=rows_in,
        added=written.added,
        updated=written.updated,
        unchanged=rows_in - written.changed,
        deleted=written.deleted,
        rejected=Counter(month for _, _, month in written.rejected),
        row_count=store.count_by_month(store.rows_table, start, end),
    )


def sync_chunks(
    store: Store,
    start: datetime,
    end: datetime,
    max_chars: int,
    overlap: int,
    source: SourceKind = REPOSITORIES,
    max_chunks: int = Settings.max_chunks,
) -> StepResult:
    """Chunk the rows of the window whose text (or chunking) changed; a row's first
    `max_chunks` chunks (`rows_truncated`: the rows that had more)."""
    began = time.perf_counter()
    chunker = f"v1:{max_chars}:{overlap}:{max_chunks}"
    with store.window_lock("chunks", start, end):
        rows = source.rows_to_chunk(store, start, end, chunker)
        chunks, truncated = [], []
        for row in rows:
            if not row.text:  # a row whose template gives no text has nothing to embed
                continue
            kept, cut = bounded(source.chunk(row, max_chars, overlap), max_chunks)
            if cut:
                truncated.append(row)
            chunks += [
                (
                    chunk.chunk_id,
                    chunk.key,
                    chunk.position,
                    row.row_time,
                    chunk.text,
                    chunk.content_hash,
                    row.text_hash,
                    chunker,
                )
                for chunk in kept
            ]
        written = store.write_chunks(start, end, [row.key for row in rows], chunks)
    row_count = store.count_by_month("chunks", start, end)
    return StepResult.of(
        {
            "rows_truncated_examples": [row.key for row in truncated[:5]],
            "seconds": time.perf_counter() - began,
        },
        rows_in=store.count_by_month(store.rows_table, start, end),
        rows_rechunked=Counter(month_of(row.row_time) for row in rows),
        added=written["added"],
        updated=written["updated"],
        unchanged=row_count - written["added"] - written["updated"],
        deleted=written["deleted"],
        rows_truncated=Counter(month_of(row.row_time) for row in truncated),
        row_count=row_count,
    )


def _embed_page(
    store: Store,
    space: Space,
    page: list,
    cache: EmbeddingCache,
    provider: EmbeddingProvider,
    stats: dict,
) -> list[tuple[str, str, str]]:
    """Stage the vectors of one page of pending chunks for the run's write: a text with a vector
    already (staged by this run, in the space, in the cache) is staged inside the server; the
    others are sent to the provider, each distinct text once. Counts, by month, in `stats`;
    records and returns the chunks whose vector was refused (chunk_id, content_hash, reason).
    A distinct text's cache hit or miss counts in the month of its first chunk in the page."""
    chunks = [(chunk_id, h, row_time) for chunk_id, h, row_time, _ in page]
    month_of_text: dict[str, datetime] = {}
    for _, h, row_time in chunks:
        month_of_text.setdefault(h, month_of(row_time))
    reused = store.stage_known_vectors(space, chunks)
    stats["reused"].update(month_of(row_time) for _, h, row_time in chunks if h in reused)
    asked = [chunk for chunk in chunks if chunk[1] not in reused]
    hits = cache.stage_hits(asked)
    if cache.used:
        stats["cache_hits"].update(month_of_text[h] for h in hits)
        stats["cache_misses"].update(month_of_text[h] for h in {h for _, h, _ in asked} - hits)
    found = reused | hits
    todo = {h: text for _, h, _, text in page if h not in found}
    if not todo:
        return []
    vectors = np.asarray(provider.embed(list(todo.values())), dtype=np.float32)
    problems = vector_problems(vectors, len(todo), provider.dimensions)
    hashes = list(todo)
    reasons = {hashes[i]: problem for i, problem in problems.items()}
    fresh = {
        h: vector
        for i, (h, vector) in enumerate(zip(hashes, vectors, strict=True))
        if i not in problems
    }
    cache.put_many(fresh)  # before anything else can fail: a paid-for vector is kept
    store.stage_vectors(
        (chunk_id, h, row_time, fresh[h]) for chunk_id, h, row_time, _ in page if h in fresh
    )
    refused = [(cid, h, f"vector refused: {reasons[h]}") for cid, h, _, _ in page if h in reasons]
    stats["refused"].update(month_of(row_time) for _, h, row_time, _ in page if h in reasons)
    store.record_failures(space, refused)
    return refused


def sync_embeddings(
    store: Store,
    start: datetime,
    end: datetime,
    provider: EmbeddingProvider,
    *,
    cache_max_entries: int = 1_000_000,
    cache_max_age_days: float | None = None,
) -> StepResult:
    """Embed the chunks of the window that have no current vector, then write all vectors and
    drop those of vanished chunks in one transaction.

    A text is looked up, in order, among the space's current vectors (a chunk that moved), the
    embedding cache (unless the provider is cheaper than it), and only then sent to the provider;
    each distinct text once per run."""
    began = time.perf_counter()
    space = Space(
        space_name(provider.model, provider.dimensions), provider.model, provider.dimensions
    )
    store.ensure_space(space)
    # Another run over these months waits here, then finds their texts already embedded.
    with store.window_lock(f"embeddings.{space.name}", start, end):
        store.start_vector_stage()
        cache = EmbeddingCache(
            store,
            space,
            max_entries=cache_max_entries,
            max_age_days=cache_max_age_days,
            used=provider.cache_vectors,
        )
        stats = {name: Counter() for name in ("reused", "cache_hits", "cache_misses", "refused")}
        refused_examples: list[str] = []
        after = ""
        while page := store.pending_chunks(space, start, end, after, PAGE_SIZE):
            after = page[-1][0]
            refused = _embed_page(store, space, page, cache, provider, stats)
            refused_examples += [f"{cid}: {reason}" for cid, _, reason in refused[:5]]
        evicted = cache.finish()
        writing = time.perf_counter()
        written = store.write_vectors(space, start, end)
        write_seconds = time.perf_counter() - writing
    row_count = store.count_by_month(space.table, start, end)
    embedded = written["added"] + written["updated"]
    return StepResult.of(
        {
            "space": space.name,
            "cache_used": cache.used,
            "cache_evicted": evicted,
            "refused_examples": refused_examples[:5],
            "index_rebuilt": written["index_rebuilt"],
            "index_build_seconds": written["index_build_seconds"],  # of write_seconds
            # of the index as it now is (None: pgvector's default)
            "hnsw_m": written["hnsw_m"],
            "hnsw_ef_construction": written["hnsw_ef_construction"],
            "write_seconds": write_seconds,  # the one transaction, with any HNSW build
            "seconds": time.perf_counter() - began,
        },
        rows_in=store.count_by_month("chunks", start, end),
        embedded=embedded,
        added=written["added"],
        updated=written["updated"],
        unchanged=row_count - embedded,
        deleted=written["deleted"],
        reused=stats["reused"],
        cache_hits=stats["cache_hits"],
        cache_misses=stats["cache_misses"],
        refused=stats["refused"],
        row_count=row_count,
    )
