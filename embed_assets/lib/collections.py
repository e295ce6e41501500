"""The collections a project declares (`defs.yaml` files of type embed_assets.EmbeddingCollection)
and the source each one reads, checked: what the Component builds definitions from, and what the
CLI and `embed_assets.search` open a collection's store with, without Dagster.

The project is the nearest folder, from the current one up, with a pyproject.toml holding
`[tool.dg.project]` or a dg.toml; with none, this package's own defs folder.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from embed_assets.lib.database import database_url
from embed_assets.lib.errors import UsageError
from embed_assets.lib.settings import Settings
from embed_assets.lib.sources.base import DeclarationError, SourceKind
from embed_assets.lib.sources.files import declared_files_source
from embed_assets.lib.sources.repositories import REPOSITORIES
from embed_assets.lib.sources.table import declared_table_source
from embed_assets.lib.store import catalog_store

COMPONENT_TYPE = "embed_assets.EmbeddingCollection"
_OWN_DEFS = Path(__file__).resolve().parent.parent / "defs"
# A collection's name is an asset key part and part of SQL names: letters, digits, underscores.
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
SOURCE_KINDS = ("repositories", "table", "files")
# What the repositories kind fixes of a declaration.
REPOSITORIES_FIXED = {"key": "full_name", "time_column": "created_at"}


class CollectionError(UsageError):
    """A collection that cannot be used, or none that fits; the message names the file and the
    field, or what exists."""


@dataclass(frozen=True)
class Collection:
    """A declaration: its attributes as written (see the EmbeddingCollection Component)."""

    name: str
    source: dict
    path: Path  # its defs.yaml
    key: str | list[str] | None = None
    time_column: str | None = None
    text: str | None = None
    metadata: list[str] = field(default_factory=list)
    group_by: str | None = None

    @property
    def by_month(self) -> bool:
        """Monthly partitions, or (a table with no time column) one window for every row."""
        return self.source.get("kind") == "repositories" or self.time_column is not None

    def store_schema(self, settings: Settings) -> str:
        return f"{settings.schema}_{self.name}"

    def source_kind(self, settings: Settings) -> SourceKind:
        """The source, checked (against the database for a table); CollectionError names the
        file and the field."""
        try:
            return self._source_kind(settings)
        except DeclarationError as error:
            raise CollectionError(f"{self.path}: {error}") from None

    def _source_kind(self, settings: Settings) -> SourceKind:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise DeclarationError(
                "name",
                f"{self.name!r} is not a valid collection name (an asset key part: lower-case "
                "letters, digits and underscores, starting with a letter, at most 41)",
            )
        kind = self.source.get("kind")
        if kind not in SOURCE_KINDS:
            raise DeclarationError(
                "source.kind", f"unknown source kind {kind!r} (known: {', '.join(SOURCE_KINDS)})"
            )
        if kind == "repositories":
            for name, value in REPOSITORIES_FIXED.items():
                declared = getattr(self, name)
                if declared is not None and declared != value:
                    raise DeclarationError(name, f"a repositories collection's {name} is {value!r}")
            return REPOSITORIES
        if len(self.store_schema(settings)) > 63:
            raise DeclarationError(
                "name",
                f"{self.name!r} is too long: the collection's schema "
                f"{self.store_schema(settings)} would pass PostgreSQL's 63 characters",
            )
        declared = (
            self.key,
            self.time_column,
            self.text,
            list(self.metadata),
            self.group_by,
        )
        if kind == "files":
            return declared_files_source(
                self.path, self.store_schema(settings), self.source, *declared
            )
        with catalog_store(database_url(settings), settings) as store:
            return declared_table_source(
                store,
                self.store_schema(settings),
                self.source,
                *declared,
            )


def defs_folder(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        module = _defs_module(folder)
        if module:
            for base in (folder, folder / "src"):
                candidate = base.joinpath(*module.split("."))
                if candidate.is_dir():
                    return candidate
    return _OWN_DEFS


def _defs_module(folder: Path) -> str | None:
    """The defs module a dg project in `folder` names (pyproject.toml or dg.toml)."""
    for name, section in (("pyproject.toml", ("tool", "dg", "project")), ("dg.toml", ("project",))):
        path = folder / name
        if path.is_file():
            table = tomllib.loads(path.read_text())
            for part in section:
                table = table.get(part, {})
            if table.get("root_module"):
                return table.get("defs_module") or f"{table['root_module']}.defs"
    return None


def declared_collections(start: Path | None = None) -> list[Collection]:
    found = []
    for path in sorted(defs_folder(start).rglob("defs.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("type") == COMPONENT_TYPE:
                attributes = dict(document.get("attributes") or {})
                found.append(
                    Collection(
                        name=attributes.pop("name", None),
                        source=attributes.pop("source", {}),
                        path=path,
                        **attributes,
                    )
                )
    return found


def choose_collection(name: str | None, start: Path | None = None) -> Collection:
    """The collection `name`, or the only one when none is named."""
    declared = declared_collections(start)
    names = ", ".join(str(c.name) for c in declared) or "none"
    if name is None:
        if len(declared) == 1:
            return declared[0]
        raise CollectionError(f"--collection: the project declares {names}: name one")
    for collection in declared:
        if collection.name == name:
            return collection
    raise CollectionError(f"--collection: no collection {name!r} (declared: {names})")
