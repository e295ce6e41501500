"""The README's files collection, run as written: a folder of Markdown docs declared in a
`defs.yaml` with no Python, kept in sync by the sensor as the daemon would tick it: an edit
re-embeds only that file's chunks, a deletion takes its vectors, a touch re-embeds nothing, bad
files are recorded and skipped; bad declarations name the file and the field."""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

from embed_assets.cli import main
from embed_assets.components.collection import building_with
from embed_assets_tests.components.test_collection import _messages
from embed_assets_tests.components.test_table_collection import metadata, tick_and_run
from embed_assets_tests.test_walkthrough import block

DOCS = {
    "guides/install.md": "# Installing\n\nRun make install to create the virtual environment.",
    "guides/search.md": "# Searching\n\nThe search command ranks chunks by cosine similarity.",
    "guides/clusters.md": "# Clusters\n\nSimilar rows join a cluster above the threshold.",
    "reference/cli.md": "# The CLI\n\nEvery command prints JSON with --json.",
    "reference/settings.md": "# Settings\n\nEvery setting is an environment variable.",
    "faq.md": "# Questions\n\nThe offline provider needs no network at all.",
    "drafts/unfinished.md": "# Draft\n\nNot ready: excluded by the declaration.",
    "notes.txt": "not matched by **/*.md",
}


@contextmanager
def docs_project(settings, declaration: str, docs: dict[str, str | bytes] = DOCS):
    """(definitions, project root, docs folder) of a user's project with `docs/` filled and
    `declaration` as its `defs/docs/defs.yaml`."""
    with create_defs_folder_sandbox() as sandbox:
        folder = sandbox.project_root / "docs"
        for relative, content in docs.items():
            write(folder / relative, content)
        (sandbox.defs_folder_path / "docs").mkdir()
        (sandbox.defs_folder_path / "docs" / "defs.yaml").write_text(declaration)
        with building_with(settings), sandbox.build_all_defs() as collections:
            defs = collections  # no resources written: the Component brings them
            yield defs, sandbox.project_root, folder


def write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def run_json(capsys, argv: list[str]):
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_a_folder_of_docs_declared_in_yaml_stays_in_sync(settings, capsys, monkeypatch):
    with (
        docs_project(settings, block("docs/defs.yaml")) as (defs, project, folder),
        dg.instance_for_test() as instance,
    ):
        monkeypatch.chdir(project)
        keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
        assert keys == {f"docs/{a}" for a in ("rows", "chunks", "embeddings", "cluster_index")}

        cursor, runs = tick_and_run(defs, instance, collection="docs")
        assert len(runs) == 1
        assert metadata(runs, "rows", "added", "docs") == 6  # not the draft, not notes.txt
        assert metadata(runs, "embeddings", "embedded", "docs") == 6
        # Every check passes, freshness included: the one window of a collection with no
        # partitions counts as its newest.
        evaluations = {e.check_name: e for e in runs[0].get_asset_check_evaluations()}
        assert evaluations["freshness"].metadata["newest_partition"].value == "all"
        assert all(e.passed for e in evaluations.values()), [
            name for name, e in evaluations.items() if not e.passed
        ]

        hits = run_json(
            capsys, ["search", "cosine similarity ranking", "--collection", "docs", "--json"]
        )
        assert hits[0]["key"] == "guides/search.md"
        assert hits[0]["text"] == "guides/search.md\n\n" + DOCS["guides/search.md"]
        assert hits[0]["metadata"]["suffix"] == ".md"
        assert hits[0]["metadata"]["size"] == len(DOCS["guides/search.md"])
        assert set(hits[0]["metadata"]) == {"path", "suffix", "size", "mtime"}
        assert {h["key"] for h in hits}.isdisjoint({"drafts/unfinished.md", "notes.txt"})

        # Nothing changed: the scan logs nothing, no run.
        cursor, runs = tick_and_run(defs, instance, cursor, collection="docs")
        assert runs == []

        # One file edited: only its chunk is embedded again, the provider sent that one text.
        write(folder / "faq.md", "# Questions\n\nThe offline provider hashes character grams.")
        cursor, runs = tick_and_run(defs, instance, cursor, collection="docs")
        assert metadata(runs, "rows", "updated", "docs") == 1
        assert metadata(runs, "chunks", "rows_rechunked", "docs") == 1
        assert metadata(runs, "embeddings", "embedded", "docs") == 1
        assert metadata(runs, "embeddings", "texts_sent", "docs") == 1

        # A touch (new time, same bytes): hashed and found equal; its metadata (mtime) is
        # refreshed and nothing is embedded.
        stamp = (folder / "guides/install.md").stat().st_mtime + 3600
        os.utime(folder / "guides/install.md", (stamp, stamp))
        cursor, runs = tick_and_run(defs, instance, cursor, collection="docs")
        assert metadata(runs, "rows", "updated", "docs") == 1
        assert metadata(runs, "chunks", "rows_rechunked", "docs") == 0
        assert metadata(runs, "embeddings", "texts_sent", "docs") == 0
        [hit] = run_json(
            capsys,
            ["search", "make install", "--collection", "docs", "-k", "1", "--json"],
        )
        assert hit["key"] == "guides/install.md"
        assert hit["metadata"]["mtime"].startswith(
            datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        )

        # One file deleted: its vectors go.
        (folder / "reference/cli.md").unlink()
        cursor, runs = tick_and_run(defs, instance, cursor, collection="docs")
        assert metadata(runs, "embeddings", "deleted", "docs") == 1
        hits = run_json(capsys, ["search", "prints JSON", "--collection", "docs", "--json"])
        assert "reference/cli.md" not in {h["key"] for h in hits}

        # An undecodable file and one grown past max_file_bytes: recorded with the reason and
        # skipped; the grown one loses its vectors.
        write(folder / "guides/latin1.md", "# Caf\xe9\n".encode("latin-1"))
        write(folder / "reference/settings.md", "# Settings\n\n" + "every setting. " * 2000)
        cursor, runs = tick_and_run(defs, instance, cursor, collection="docs")
        assert metadata(runs, "rows", "rejected", "docs") == 2
        assert metadata(runs, "embeddings", "deleted", "docs") == 1
        examples = runs[0].asset_materializations_for_node("docs__rows")[0].metadata
        assert "guides/latin1.md: not UTF-8 text (byte 0xe9 at offset 5)" in (
            examples["rejected_examples"].value
        )
        assert "reference/settings.md: 30,012 bytes, over max_file_bytes (20,000)" in (
            examples["rejected_examples"].value
        )
        status = run_json(capsys, ["status", "--collection", "docs", "--json"])
        assert (status["source_rows"], status["rows"], status["rejected"]) == (4, 4, 2)
        assert (status["embeddings"], status["pending"]) == (4, 0)
        # Rejected files unchanged since: not read again, nothing logged.
        cursor, runs = tick_and_run(defs, instance, cursor, collection="docs")
        assert runs == []

        # Fixed: accepted again and embedded.
        write(folder / "reference/settings.md", "# Settings\n\nSettings are variables.")
        cursor, runs = tick_and_run(defs, instance, cursor, collection="docs")
        assert metadata(runs, "rows", "added", "docs") == 1
        assert metadata(runs, "rows", "rejected", "docs") == 1


def test_load_scans_and_sync_embeds_a_files_collection(settings, capsys, monkeypatch, tmp_path):
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\n\nnot under the root")
    declaration = {
        "type": "embed_assets.EmbeddingCollection",
        "attributes": {
            "name": "code",
            "source": {"kind": "files", "root": "docs", "include": ["**/*.md", "notes.txt"]},
            "metadata": ["path", "name"],
            "group_by": "suffix",
        },
    }
    with docs_project(settings, yaml.safe_dump(declaration)) as (defs, project, folder):
        (folder / "guides" / "link.md").symlink_to(outside)
        (folder / "guides" / "inside.md").symlink_to(folder / "faq.md")
        monkeypatch.chdir(project)
        capsys.readouterr()
        assert main(["load", "--collection", "code", "--json"]) == 0
        out, err = capsys.readouterr()
        scanned = json.loads(out)
        # The 7 Markdown files (no exclude here), notes.txt and the two symlinks; the one
        # pointing out of the root is recorded and not followed.
        assert scanned["matched"] == 10 and scanned["added"] == 9
        assert scanned["rejected"] == 1 and scanned["rejected_files"] == 1
        assert "rejected file guides/link.md: a symlink to outside the root" in err
        again = run_json(capsys, ["load", "--collection", "code", "--json"])
        assert (again["hashed"], again["added"], again["rejected"]) == (0, 0, 0)
        synced = run_json(capsys, ["sync", "--collection", "code", "--json"])
        assert synced["embedded"] == 9
        assert run_json(capsys, ["sync", "--collection", "code", "--json"])["embedded"] == 0
        hits = run_json(
            capsys,
            ["search", "network", "--collection", "code", "--group", ".txt", "--json"],
        )
        assert [h["key"] for h in hits] == ["notes.txt"]
        assert hits[0]["metadata"] == {"path": "notes.txt", "name": "notes.txt"}
        assert hits[0]["text"] == DOCS["notes.txt"]  # the default template: the content

        # Spaces and the shared cache of a files collection: a model switch fills a new space
        # of this collection, and activating it builds its cluster index.
        [space] = run_json(capsys, ["spaces", "--collection", "code", "--json"])
        assert (space["active"], space["embeddings"], space["pending"]) == (True, 9, 0)
        cache = run_json(capsys, ["cache", "stats", "--collection", "code", "--json"])
        # The offline provider is cheaper than the cache: nothing cached, nothing asked.
        assert cache == {"entries": 0, "hits": 0, "misses": 0, "hit_rate": 0.0}
        monkeypatch.setenv("EMBED_ASSETS_DIMENSIONS", "128")
        assert run_json(capsys, ["sync", "--collection", "code", "--json"])["embedded"] == 9
        new = "offline_hash_v2_128"
        listed = run_json(capsys, ["spaces", "--collection", "code", "activate", new, "--json"])
        assert [s["name"] for s in listed if s["active"]] == [new]
        clusters = run_json(capsys, ["clusters", "--collection", "code", "--json"])
        assert sum(c["size"] for c in clusters) == 9
        assert run_json(capsys, ["cache", "clear", "--json"]) == {"removed": 0}


@pytest.mark.parametrize(
    ("source", "extra", "expected"),
    [
        (
            {"root": "nowhere", "include": ["**/*.md"]},
            {},
            "docs/defs.yaml: source.root: 'nowhere' is not a folder",
        ),
        (
            {"root": "docs", "include": ["docs/[.md"]},
            {},
            "docs/defs.yaml: source.include[0]: 'docs/[.md' has a [ with no closing ]",
        ),
        (
            {"root": "docs", "include": ["**/*.md"], "exclude": ["../**"]},
            {},
            "docs/defs.yaml: source.exclude[0]: '../**' must stay inside the root",
        ),
        (
            {"root": "docs", "include": []},
            {},
            "docs/defs.yaml: source.include: a list of glob patterns",
        ),
        (
            {"root": "docs", "include": ["a**b"]},
            {},
            "docs/defs.yaml: source.include[0]: 'a**b': ** must be a whole path segment",
        ),
        (
            {"root": "docs", "include": ["*.md"], "max_bytes": 10},
            {},
            "docs/defs.yaml: source.max_bytes: not a field of a files source",
        ),
        (
            {"root": "docs", "include": ["*.md"], "max_file_bytes": 0},
            {},
            "docs/defs.yaml: source.max_file_bytes: a positive number, got 0",
        ),
        (
            {"root": "docs", "include": ["*.md"]},
            {"text": "{title}\n{content}"},
            "docs/defs.yaml: text: a file has no field 'title'",
        ),
        (
            {"root": "docs", "include": ["*.md"]},
            {"time_column": "mtime"},
            "docs/defs.yaml: time_column: a files collection has no partitions",
        ),
        (
            {"root": "docs", "include": ["*.md"]},
            {"metadata": ["owner"]},
            "docs/defs.yaml: metadata: a file has no field 'owner'",
        ),
    ],
)
def test_a_bad_files_declaration_names_the_file_and_the_field(settings, source, extra, expected):
    declaration = {
        "type": "embed_assets.EmbeddingCollection",
        "attributes": {"name": "docs", "source": {"kind": "files", **source}, **extra},
    }
    with pytest.raises(Exception) as raised:
        with docs_project(settings, yaml.safe_dump(declaration)):
            pass
    assert expected in "\n".join(_messages(raised.value))


PROJECT = Path(__file__).resolve().parents[2]


def test_the_projects_own_docs_and_code_as_a_files_collection(settings, capsys, monkeypatch):
    """The issue's example: this project's docs/ and embed_assets/ (copied), one collection."""
    sources = {
        path.relative_to(PROJECT).as_posix(): path.read_bytes()
        for folder in ("docs", "embed_assets")
        for path in (PROJECT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    declaration = {
        "type": "embed_assets.EmbeddingCollection",
        "attributes": {
            "name": "project",
            "source": {
                "kind": "files",
                "root": ".",
                "include": ["docs/**/*.md", "embed_assets/**/*.py"],
                "exclude": ["**/__pycache__/**"],
            },
            "text": "{path}\n\n{content}",
        },
    }
    with docs_project(settings, yaml.safe_dump(declaration), {}) as (defs, project, _):
        for relative, content in sources.items():
            write(project / relative, content)
        monkeypatch.chdir(project)
        first = run_json(capsys, ["sync", "--collection", "project", "--skip-clusters", "--json"])
        status = run_json(capsys, ["status", "--collection", "project", "--json"])
        wanted = [
            p for p in sources if p.endswith(".py") or p.startswith("docs/") and p.endswith(".md")
        ]
        assert status["rows"] == len(wanted) and status["pending"] == 0
        assert first["embedded"] == status["chunks"] == status["embeddings"]

        hits = run_json(
            capsys,
            ["search", "HNSW index build parameters", "--collection", "project", "--json"],
        )
        assert hits and all(h["key"] in sources for h in hits)
        assert all(h["metadata"]["path"] == h["key"] for h in hits)
        assert any("hnsw" in h["text"].lower() for h in hits)

        # One file edited: only its chunks; one deleted: its vectors go.
        edited = project / "embed_assets/components/__init__.py"
        edited.write_text(edited.read_text() + "\n# an edit\n")
        (project / "embed_assets/lib/sources/repositories.py").unlink()
        chunks_of = dict(
            run_json(
                capsys,
                [
                    "db",
                    "sql",
                    f"SELECT key, count(*) FROM {settings.schema}_project.chunks "
                    "WHERE key IN ('embed_assets/components/__init__.py', "
                    "'embed_assets/lib/sources/repositories.py') GROUP BY key",
                    "--json",
                ],
            )
        )
        report = run_json(capsys, ["sync", "--collection", "project", "--skip-clusters", "--json"])
        assert report["embedded"] == chunks_of["embed_assets/components/__init__.py"]
        assert report["deleted"] == chunks_of["embed_assets/lib/sources/repositories.py"]
        hits = run_json(
            capsys,
            ["search", "RepositoriesSource", "--collection", "project", "-k", "50", "--json"],
        )
        assert "embed_assets/lib/sources/repositories.py" not in {h["key"] for h in hits}


USER_DEFINITIONS = """from pathlib import Path

import dagster as dg


@dg.definitions
def defs():
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def dg_check_defs(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parents[1])},
    )


def test_dg_check_defs_in_a_users_project_names_the_file_and_the_field():
    """A scaffolded project (definitions.py as `create-dagster` writes it, no other Python) with
    a bad files declaration: `dg check defs` fails, naming the file and the field. (The same
    project with a good one loads, resources included: `docs_project` above builds it so.)"""
    declaration = {
        "type": "embed_assets.EmbeddingCollection",
        "attributes": {
            "name": "docs",
            "source": {"kind": "files", "root": "nowhere", "include": ["**/*.md"]},
        },
    }
    with create_defs_folder_sandbox() as sandbox:
        (sandbox.defs_folder_path.parent / "definitions.py").write_text(USER_DEFINITIONS)
        path = sandbox.defs_folder_path / "docs" / "defs.yaml"
        write(path, yaml.safe_dump(declaration))
        checked = dg_check_defs(sandbox.project_root)
        assert checked.returncode != 0
        assert f"{path}: source.root: 'nowhere' is not a folder" in checked.stdout + checked.stderr
