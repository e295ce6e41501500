"""The source-kind interface: what differs between the sources of collections (where rows come
from and how they are validated, their key, their text) sits behind it; chunks, embeddings,
spaces, the cache, the change log and clusters are generic.

A kind's SQL (its DDL and change triggers) is in `embed_assets.lib.store`; a store is opened for
a collection with the kind's `table_spec` (None: the repositories layout).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from embed_assets.lib.errors import UsageError
from embed_assets.lib.store import Store, TableSpec
from embed_assets.lib.text import Chunk, chunk_text


class DeclarationError(UsageError):
    """A field of a collection's declaration cannot be used: `field` names it."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class RowText:
    """A row whose chunks are out of date: its key, the text to embed, its time, its text hash."""

    key: str
    text: str
    row_time: datetime
    text_hash: str


@dataclass(frozen=True)
class RowsWritten:
    """What a kind's rows step wrote to the normalised rows of a window, by month (UTC)."""

    changed: Counter  # source rows read because their hash differed from the stored one
    added: Counter
    updated: Counter
    deleted: Counter
    rejected: list[tuple[str, str, datetime]]  # (key, reason, month) of invalid rows


class SourceKind(ABC):
    kind: ClassVar[str]

    @property
    @abstractmethod
    def table_spec(self) -> TableSpec | None:
        """How a store of this kind's collection is laid out (None: the repositories one)."""

    def refresh_changes(self, store: Store) -> object:
        """Bring the change log up to date before it is read (a files kind scans its folder);
        a kind whose source logs its own changes (triggers) or is polled does nothing."""
        return None

    @abstractmethod
    def write_rows(self, store: Store, start: datetime, end: datetime) -> RowsWritten:
        """Bring the normalised rows of [start, end) up to date with the source, in one
        transaction."""

    @abstractmethod
    def count_source(self, store: Store, start: datetime, end: datetime) -> Counter:
        """Source rows of [start, end), by month (UTC)."""

    @abstractmethod
    def rows_to_chunk(
        self, store: Store, start: datetime, end: datetime, chunker: str
    ) -> list[RowText]:
        """Rows of [start, end) whose text, time or chunking differs from their chunks'."""

    def chunk(self, row: RowText, max_chars: int, overlap: int) -> list[Chunk]:
        return chunk_text(row.key, row.text, max_chars, overlap)
