"""The `table` source kind: any table or view of the project's database, schema-qualified; the
text is a template over its columns (`"{subject}\n\n{body}"`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from embed_assets.lib.sources.base import DeclarationError, RowsWritten, RowText, SourceKind
from embed_assets.lib.store import Store, TableSpec
from embed_assets.lib.text import render_template, template_fields

CHANGE_DETECTION = ("triggers", "poll")


@dataclass(frozen=True)
class TableSource(SourceKind):
    spec: TableSpec
    template: str
    kind = "table"

    @property
    def table_spec(self) -> TableSpec:
        return self.spec

    def write_rows(self, store: Store, start: datetime, end: datetime) -> RowsWritten:
        written = store.sync_table_rows(self.spec, start, end)
        return RowsWritten(
            changed=written["changed"],
            added=written["added"],
            updated=written["updated"],
            deleted=written["deleted"],
            rejected=[],  # any row of a table is valid: its text is what its columns say
        )

    def count_source(self, store: Store, start: datetime, end: datetime) -> Counter:
        return store.table_source_months(self.spec, start, end)

    def rows_to_chunk(
        self, store: Store, start: datetime, end: datetime, chunker: str
    ) -> list[RowText]:
        return [
            RowText(
                row["key"],
                render_template(self.template, row["fields"]),
                row["row_time"],
                row["text_hash"],
            )
            for row in store.table_rows_to_chunk(start, end, chunker)
        ]


def declared_table_source(
    store: Store,
    store_schema: str,
    source: dict,
    key: str | list[str] | None,
    time_column: str | None,
    text: str | None,
    metadata: list[str],
    group_by: str | None,
) -> TableSource:
    """A table collection's source from its declaration, checked against the database: the
    relation exists, every column named exists, the key is unique. Raises DeclarationError."""
    relation = source.get("table")
    if not isinstance(relation, str) or relation.count(".") != 1:
        raise DeclarationError(
            "source.table",
            f"must name a schema-qualified table or view (schema.name), got {relation!r}",
        )
    schema, name = relation.split(".")
    columns = store.relation_columns(schema, name)
    if columns is None:
        raise DeclarationError("source.table", f"no table or view {relation} in the database")
    if not key:
        raise DeclarationError("key", "a table collection needs a key: a column or a list")
    if not text:
        raise DeclarationError("text", 'a table collection needs a template: "{subject}\\n{body}"')
    keys = [key] if isinstance(key, str) else list(key)
    try:
        fields = template_fields(text)
    except ValueError as error:
        raise DeclarationError("text", f"not a template: {error}") from None
    named = [("key", c) for c in keys] + [("text", c) for c in fields]
    named += [("metadata", c) for c in metadata]
    named += [(f, c) for f, c in (("time_column", time_column), ("group_by", group_by)) if c]
    for field, column in named:
        if column not in columns:
            raise DeclarationError(
                field,
                f"{relation} has no column {column!r}"
                + (" (the template names it)" if field == "text" else ""),
            )
    view = store.is_view(schema, name)
    detection = source.get("change_detection", "poll" if view else "triggers")
    if detection not in CHANGE_DETECTION:
        raise DeclarationError(
            "source.change_detection",
            f"must be one of {', '.join(CHANGE_DETECTION)}, got {detection!r}",
        )
    if view and detection == "triggers":
        raise DeclarationError(
            "source.change_detection", f"{relation} is a view, which has no triggers: use poll"
        )
    spec = TableSpec(
        store_schema=store_schema,
        schema=schema,
        table=name,
        key=tuple(keys),
        time_column=time_column,
        columns=tuple(fields),
        metadata=tuple(metadata),
        group_by=group_by,
        triggers=detection == "triggers",
    )
    if not store.key_is_unique(spec):
        raise DeclarationError(
            "key",
            f"({', '.join(keys)}) is not unique in {relation}: "
            + ("two rows share a key" if view else "no primary key or unique index on it"),
        )
    return TableSource(spec, text)
