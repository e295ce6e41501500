"""The files source kind's scan against the real store: globs, excludes, what is read, what is
logged to `source_changes`, what is recorded as rejected, and what a scan never does."""

import os
from pathlib import Path

import pytest

from embed_assets.lib.sources.files import ScanError, declared_files_source, glob_regex
from embed_assets.lib.store import open_store


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("**/*.md", ["a.md", "x/y/a.md"], ["a.txt", "a.md/b"]),
        ("docs/**/*.md", ["docs/a.md", "docs/x/y/a.md"], ["other/docs/a.md", "docs.md"]),
        ("*.md", ["a.md"], ["x/a.md"]),
        ("src/[ab]?.py", ["src/a1.py", "src/bz.py"], ["src/c1.py", "src/a12.py"]),
        ("[!.]*", ["a"], [".hidden"]),
        ("notes/**", ["notes/a", "notes/x/b"], ["notesa"]),
    ],
)
def test_globs_match_relative_paths(pattern, matching, not_matching):
    regex = glob_regex(pattern)
    assert [p for p in matching if regex.match(p)] == matching
    assert [p for p in not_matching if regex.match(p)] == []


def files_source(settings, root: Path, **source):
    declaration = root.parent / "defs.yaml"
    return declared_files_source(
        declaration,
        f"{settings.schema}_docs",
        {"kind": "files", "root": str(root), "include": ["**/*"]} | source,
        None,
        None,
        "{path}\n{content}",
        [],
        None,
    )


def changes(store) -> list[tuple[str, str]]:
    return [
        tuple(row)
        for row in store.execute(f'SELECT key, op FROM "{store.schema}".source_changes ORDER BY id')
    ]


def test_a_scan_logs_only_what_changed_and_records_what_it_skips(settings, tmp_path):
    root = tmp_path / "tree"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("print('a')\n")
    (root / "src" / "b.py").write_text("print('b')\n")
    (root / "node_modules" / "x").mkdir(parents=True)
    (root / "node_modules" / "x" / "index.js").write_text("module.exports = 1\n")
    (root / "blob.bin").write_bytes(b"text\x00with a NUL")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "c.py").write_text("outside\n")
    (root / "linked").symlink_to(tmp_path / "elsewhere")  # a symlinked folder: not entered
    source = files_source(settings, root, exclude=["node_modules/**"], max_file_bytes=100)
    with open_store(settings.database_url, settings, source.table_spec) as store:
        first = source.scan(store)
        assert (first.matched, first.added, first.rejected) == (3, 2, 1)
        assert store.rejected_files() == [("blob.bin", "holds NUL bytes: binary, not text")]
        assert sorted(changes(store)) == [("src/a.py", "insert"), ("src/b.py", "insert")]

        # Nothing changed: nothing read, nothing written.
        again = source.scan(store)
        assert (again.hashed, again.added, again.changed, again.rejected) == (0, 0, 0, 0)
        assert len(changes(store)) == 2

        # One file edited, one grown past max_file_bytes (its row goes), one new.
        (root / "src" / "a.py").write_text("print('A')\n")
        (root / "src" / "b.py").write_text("x" * 101)
        (root / "src" / "c.py").write_text("print('c')\n")
        scan = source.scan(store)
        assert (scan.hashed, scan.added, scan.changed, scan.deleted) == (2, 1, 1, 1)
        assert sorted(changes(store)[2:]) == [
            ("src/a.py", "update"),
            ("src/b.py", "delete"),
            ("src/c.py", "insert"),
        ]
        assert dict(store.rejected_files())["src/b.py"] == ("101 bytes, over max_file_bytes (100)")

        # A file whose time moved but whose bytes did not: hashed, no new content.
        stamp = (root / "src" / "c.py").stat().st_mtime + 60
        os.utime(root / "src" / "c.py", (stamp, stamp))
        touched = source.scan(store)
        assert (touched.hashed, touched.touched, touched.changed) == (1, 1, 0)

        # The root gone (an unmounted volume): the scan fails and deletes nothing.
        root.rename(tmp_path / "moved")
        with pytest.raises(ScanError, match="is not a folder"):
            source.scan(store)
        assert store.count_table_source(source.table_spec) == 2
