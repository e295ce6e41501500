"""The `files` source kind: the files under a folder that match glob patterns, keyed by their path
relative to the folder; the text is a template over `{path}`, `{name}`, `{suffix}`, `{content}`.

A scan records the folder in the collection's `files` table (`embed_assets.lib.store.files`), and
the table machinery does the rest: triggers on `files` log each added, changed and vanished file
to `source_changes`, and the rows step upserts the rows whose read columns changed. A scan is
cheap: a file whose size and modification time are what the store holds is not opened; one whose
are not is hashed (sha256 of its bytes), and only new bytes count as a change, so a `touch` or a
checkout re-embeds nothing. Files that cannot be embedded (not UTF-8, NUL bytes, over
`max_file_bytes`, unreadable, a symlink out of the root) are recorded with the reason and skipped.

No partitions: a file's one stable time would be its creation, which file systems do not keep,
and its modification time moves on every edit (an edit would move the file between partitions);
a folder of docs or code is small enough for one window.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from embed_assets.lib.sources.base import DeclarationError, RowsWritten
from embed_assets.lib.sources.table import TableSource
from embed_assets.lib.store import Seen, Store, TableSpec
from embed_assets.lib.store.base import month_of
from embed_assets.lib.store.table import UNPARTITIONED_TIME
from embed_assets.lib.text import template_fields

ONE_MONTH = month_of(datetime.fromisoformat(UNPARTITIONED_TIME))  # of every file's row

TEXT_FIELDS = ("path", "name", "suffix", "content")  # what a template may name
METADATA_FIELDS = ("path", "name", "suffix", "size", "mtime")
DEFAULT_METADATA = ("path", "suffix", "size", "mtime")
DEFAULT_TEXT = "{content}"
DEFAULT_MAX_FILE_BYTES = 1_000_000
SOURCE_FIELDS = ("kind", "root", "include", "exclude", "max_file_bytes")


class ScanError(RuntimeError):
    """The folder cannot be scanned at all (it is gone): nothing is changed."""


def glob_regex(pattern: str) -> re.Pattern:
    """A glob over paths relative to the root, `/`-separated: `*` and `?` within a name, `[...]`
    a character of a set, `**` as a whole segment any number of folders. ValueError says why a
    pattern is not one."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError(f"{pattern!r} is not a glob pattern")
    if pattern.startswith("/") or ".." in pattern.split("/"):
        raise ValueError(f"{pattern!r} must stay inside the root (no leading / and no ..)")
    parts = pattern.split("/")
    regex = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex.append(".*" if last else "(?:[^/]+/)*")
            continue
        if "**" in part:
            raise ValueError(f"{pattern!r}: ** must be a whole path segment (a/**/b)")
        if not part:
            raise ValueError(f"{pattern!r} has an empty path segment")
        regex.append(_segment(part, pattern) + ("" if last else "/"))
    return re.compile("".join(regex) + r"\Z")


def _segment(part: str, pattern: str) -> str:
    out, i = [], 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = part.find("]", i + 2 if part[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                raise ValueError(f"{pattern!r} has a [ with no closing ]")
            body = part[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _literal_prefix(pattern: str) -> str:
    """The folders a pattern starts with that hold no wildcard: the walk starts there."""
    folders = []
    for part in pattern.split("/")[:-1]:
        if any(c in part for c in "*?["):
            break
        folders.append(part)
    return "/".join(folders)


@dataclass(frozen=True)
class Scan:
    """What one scan found: files matched, opened (hashed), and the changes it recorded."""

    matched: int
    hashed: int  # text files read because their size or time moved
    added: int
    changed: int  # new bytes
    touched: int  # same bytes, another size or time: no change logged
    deleted: int
    rejected: int  # newly rejected


@dataclass(frozen=True)
class FilesSource(TableSource):
    root: Path
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    kind = "files"

    def refresh_changes(self, store: Store) -> Scan:
        return self.scan(store)

    def write_rows(self, store: Store, start: datetime, end: datetime) -> RowsWritten:
        self.scan(store)
        written = super().write_rows(store, start, end)
        return RowsWritten(
            changed=written.changed,
            added=written.added,
            updated=written.updated,
            deleted=written.deleted,
            # Files have no time: a rejected one counts in the one window's month.
            rejected=[(path, reason, ONE_MONTH) for path, reason in store.rejected_files()],
        )

    def matching(self) -> Iterator[tuple[str, Path]]:
        """(relative path, path) of each file under the root matching the patterns. Symlinked
        folders are not entered (no loops, nothing outside the root)."""
        include = [glob_regex(p) for p in self.include]
        exclude = [glob_regex(p) for p in self.exclude]
        # An exclude ending in /** also prunes the walk of that folder (node_modules/**, .git/**).
        pruned = [glob_regex(p[:-3]) for p in self.exclude if p.endswith("/**") and len(p) > 3]
        starts = sorted({_literal_prefix(p) for p in self.include})
        if "" in starts:
            starts = [""]
        starts = [s for s in starts if not any(s.startswith(t + "/") for t in starts)]
        for start in starts:
            top = self.root / start if start else self.root
            if not top.is_dir() or top.is_symlink():
                continue
            for folder, dirs, names in os.walk(top):
                relative = Path(folder).relative_to(self.root).as_posix()
                prefix = "" if relative == "." else relative + "/"
                dirs[:] = sorted(d for d in dirs if not any(r.match(prefix + d) for r in pruned))
                for name in sorted(names):
                    path = prefix + name
                    if any(r.match(path) for r in include) and not any(
                        r.match(path) for r in exclude
                    ):
                        yield path, Path(folder) / name

    def scan(self, store: Store) -> Scan:
        """Record the folder's files in the store: only what differs is written, in one
        transaction (the triggers on `files` log it). Raises ScanError, changing nothing, when
        the root is not a folder any more: a missing mount must not delete every vector."""
        if not self.root.is_dir():
            raise ScanError(f"source.root: {self.root} is not a folder (any more): nothing scanned")
        with store.lock(f"{store.schema}.files_scan"):
            seen = store.seen_files()
            upserts, touched, rejected, present = [], [], [], set()
            added = changed = 0
            for relative, path in self.matching():
                try:
                    found = self._read(relative, path, seen.get(relative))
                except FileNotFoundError:  # gone between the listing and the read
                    continue
                present.add(relative)
                if found is None:
                    continue
                action, row = found
                if action == "rejected":
                    rejected.append(row)
                elif action == "touched":
                    touched.append(row)
                else:
                    upserts.append(row)
                    added += relative not in seen or seen[relative].sha256 is None
                    changed += relative in seen and seen[relative].sha256 is not None
            gone = [path for path in seen if path not in present]
            deleted = sum(1 for path in gone if seen[path].sha256 is not None)
            deleted += sum(1 for path, *_ in rejected if seen.get(path, Seen(0, 0, None)).sha256)
            if upserts or touched or rejected or gone:
                store.write_scan(upserts, touched, rejected, gone)
        hashed = len(upserts) + len(touched)
        return Scan(len(present), hashed, added, changed, len(touched), deleted, len(rejected))

    def _read(self, relative: str, path: Path, prior: Seen | None) -> tuple[str, tuple] | None:
        """What to record of one file: None (unchanged), or ("rejected", (path, size,
        mtime_ns, reason)), ("touched", (path, size, mtime, mtime_ns)) or ("upsert", a row of
        the `files` table)."""
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(self.root):
                st = path.lstat()
                reason = "a symlink to outside the root: not followed"
                return _unless_seen(prior, st, ("rejected", (relative, 0, st.st_mtime_ns, reason)))
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            return None
        if prior is not None and (prior.size, prior.mtime_ns) == (st.st_size, st.st_mtime_ns):
            return None
        if st.st_size > self.max_file_bytes:
            reason = f"{st.st_size:,} bytes, over max_file_bytes ({self.max_file_bytes:,})"
            return "rejected", (relative, st.st_size, st.st_mtime_ns, reason)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as error:
            reason = f"cannot be read: {error.strerror or error}"
            return "rejected", (relative, st.st_size, st.st_mtime_ns, reason)
        digest = hashlib.sha256(data).hexdigest()
        mtime = datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC)
        if prior is not None and prior.sha256 == digest:
            return "touched", (relative, len(data), mtime, st.st_mtime_ns)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            reason = f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start:,})"
            return "rejected", (relative, len(data), st.st_mtime_ns, reason)
        if "\x00" in text:
            reason = "holds NUL bytes: binary, not text"
            return "rejected", (relative, len(data), st.st_mtime_ns, reason)
        name = path.name
        row = (relative, name, Path(name).suffix, len(data), mtime, st.st_mtime_ns, digest, text)
        return "upsert", row


def _unless_seen(prior: Seen | None, st: os.stat_result, found: tuple) -> tuple | None:
    """A rejection already recorded with this time is not recorded again."""
    if prior is not None and prior.sha256 is None and prior.mtime_ns == st.st_mtime_ns:
        return None
    return found


def project_root(declaration: Path) -> Path:
    """The project a defs.yaml belongs to: the nearest folder above it with a pyproject.toml or
    a dg.toml; with none, the defs.yaml's own folder."""
    for folder in declaration.resolve().parents:
        if (folder / "pyproject.toml").is_file() or (folder / "dg.toml").is_file():
            return folder
    return declaration.resolve().parent


def declared_files_source(
    declaration: Path,
    store_schema: str,
    source: dict,
    key: str | list[str] | None,
    time_column: str | None,
    text: str | None,
    metadata: list[str],
    group_by: str | None,
) -> FilesSource:
    """A files collection's source from its declaration, checked: the root is a folder, the
    patterns are globs, the template and metadata name file fields. Raises DeclarationError."""
    if unknown := sorted(set(source) - set(SOURCE_FIELDS)):
        raise DeclarationError(
            f"source.{unknown[0]}",
            f"not a field of a files source (known: {', '.join(SOURCE_FIELDS[1:])})",
        )
    root = source.get("root")
    if not isinstance(root, str) or not root:
        raise DeclarationError("source.root", "a files collection needs the folder to read")
    folder = Path(root).expanduser()
    folder = (folder if folder.is_absolute() else project_root(declaration) / folder).resolve()
    if not folder.is_dir():
        raise DeclarationError("source.root", f"{root!r} is not a folder (looked for {folder})")
    patterns = {}
    for field in ("include", "exclude"):
        value = source.get(field, [] if field == "exclude" else None)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or (field == "include" and not value):
            raise DeclarationError(
                f"source.{field}", 'a list of glob patterns, e.g. ["docs/**/*.md", "**/*.py"]'
            )
        for i, pattern in enumerate(value):
            try:
                glob_regex(pattern)
            except ValueError as error:
                raise DeclarationError(f"source.{field}[{i}]", str(error)) from None
        patterns[field] = tuple(value)
    max_bytes = source.get("max_file_bytes", DEFAULT_MAX_FILE_BYTES)
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes <= 0:
        raise DeclarationError("source.max_file_bytes", f"a positive number, got {max_bytes!r}")
    if key not in (None, "path"):
        raise DeclarationError("key", "a files collection is keyed by the file's path: omit it")
    if time_column is not None:
        raise DeclarationError(
            "time_column", "a files collection has no partitions (no time column): omit it"
        )
    template = DEFAULT_TEXT if text is None else text
    try:
        fields = template_fields(template)
    except ValueError as error:
        raise DeclarationError("text", f"not a template: {error}") from None
    for field_name, names, allowed in (
        ("text", fields, TEXT_FIELDS),
        ("metadata", metadata, METADATA_FIELDS),
        ("group_by", [group_by] if group_by else [], METADATA_FIELDS),
    ):
        for name in names:
            if name not in allowed:
                raise DeclarationError(
                    field_name, f"a file has no field {name!r} (known: {', '.join(allowed)})"
                )
    spec = TableSpec(
        store_schema=store_schema,
        schema=store_schema,
        table="files",
        key=("path",),
        time_column=None,
        columns=tuple(fields),
        metadata=tuple(metadata) or DEFAULT_METADATA,
        group_by=group_by,
        triggers=True,
        kind="files",
    )
    return FilesSource(spec, template, folder, patterns["include"], patterns["exclude"], max_bytes)
