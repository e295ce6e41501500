"""The collections a project's code location declares, read from its `defs.yaml` files without
Dagster (the CLI is started for one search): the project is the nearest folder up from the
current one whose pyproject.toml has `[tool.dg.project]`, else this package's own."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

COMPONENT_TYPE = "embed_assets.EmbeddingCollection"
_OWN_DEFS = Path(__file__).resolve().parent.parent / "defs"


class CollectionError(ValueError):
    """No such collection, or no way to tell which one was meant; the message says what exists."""


@dataclass(frozen=True)
class DeclaredCollection:
    name: str
    source: dict
    path: Path  # its defs.yaml


def defs_folder(start: Path | None = None) -> Path:
    for folder in [start or Path.cwd(), *(start or Path.cwd()).parents]:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            project = tomllib.loads(pyproject.read_text()).get("tool", {}).get("dg", {})
            module = project.get("project", {}).get("defs_module")
            if module:
                for base in (folder, folder / "src"):
                    candidate = base.joinpath(*module.split("."))
                    if candidate.is_dir():
                        return candidate
    return _OWN_DEFS


def declared_collections(start: Path | None = None) -> list[DeclaredCollection]:
    found = []
    for path in sorted(defs_folder(start).rglob("defs.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("type") == COMPONENT_TYPE:
                attributes = document.get("attributes") or {}
                found.append(
                    DeclaredCollection(attributes.get("name"), attributes.get("source", {}), path)
                )
    return found


def choose_collection(name: str | None, start: Path | None = None) -> DeclaredCollection:
    """The collection `name`, or the only one when none is named."""
    declared = declared_collections(start)
    names = ", ".join(c.name for c in declared) or "none"
    if name is None:
        if len(declared) == 1:
            return declared[0]
        raise CollectionError(f"--collection: the project declares {names}: name one")
    for collection in declared:
        if collection.name == name:
            return collection
    raise CollectionError(f"--collection: no collection {name!r} (declared: {names})")
