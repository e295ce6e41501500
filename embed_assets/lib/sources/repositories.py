"""The `repositories` source kind: GitHub repository rows in the source table
(`<schema>.repositories_source`, the loading contract), validated and normalised in SQL."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from embed_assets.lib.sources.base import RowsWritten, RowText, SourceKind
from embed_assets.lib.store import Store, TableSpec
from embed_assets.lib.text import Chunk, chunk_repository, repository_text


class RepositoriesSource(SourceKind):
    kind = "repositories"

    @property
    def table_spec(self) -> TableSpec | None:
        return None

    def write_rows(self, store: Store, start: datetime, end: datetime) -> RowsWritten:
        written = store.sync_repositories(start, end)
        return RowsWritten(
            changed=written["changed"],
            added=written["added"],
            updated=written["updated"],
            deleted=written["deleted"],
            rejected=written["rejected"],
        )

    def count_source(self, store: Store, start: datetime, end: datetime) -> Counter:
        return store.source_months(start, end)

    def rows_to_chunk(
        self, store: Store, start: datetime, end: datetime, chunker: str
    ) -> list[RowText]:
        return [
            RowText(
                repo["full_name"],
                repository_text(
                    repo["full_name"],
                    repo["description"],
                    repo["language"],
                    repo["topics"],
                    repo["readme"],
                ),
                repo["row_time"],
                repo["text_hash"],
            )
            for repo in store.repositories_to_chunk(start, end, chunker)
        ]

    def chunk(self, row: RowText, max_chars: int, overlap: int) -> list[Chunk]:
        return chunk_repository(row.key, row.text, max_chars, overlap)


REPOSITORIES = RepositoriesSource()
