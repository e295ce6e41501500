"""Read repository rows from CSV, JSON Lines or Parquet into validated SourceRows plus per-row
rejects.

A whole-file problem (unknown format, missing file, missing column) raises LoaderError. A bad row
becomes a Rejected carrying its row number and a reason naming the column, and the other rows still
load.
No database access here: `upsert_rows` hands the SourceRows to a store, the one write path of
every source (a file, GitHub), saying which columns the load gives and whether it replaces them;
`upsert_file` applies a file's rules (merge, `--replace`, `--prune`).
"""

from __future__ import annotations

import csv
import gc
import json
import math
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from numbers import Integral, Real
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from embed_assets.lib.errors import UsageError
from embed_assets.lib.store.repositories import SOURCE_COLUMNS

_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_FULL_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
# ASCII digits, optionally with thousands separators ("1,234") and a fraction ("1234.0", checked
# later).
_NUMBER = re.compile(r"-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
# A README cell can exceed the csv module's 128 KiB default; 2**31-1 fits a C long everywhere.
_MAX_CSV_FIELD = 2**31 - 1


class LoaderError(UsageError):
    """The file as a whole cannot be loaded; the message names the path and the problem."""


@dataclass(frozen=True)
class SourceRow:
    full_name: str
    description: str | None
    language: str | None
    stars: int | None
    topics: list[str]
    url: str | None
    readme: str | None
    created_at: datetime


@dataclass(frozen=True)
class Rejected:
    row: int
    full_name: str | None
    reason: str


@dataclass
class ParsedFile:
    rows: list[SourceRow] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    # The source columns the file has (created_at: it gives the rows' time, by any column).
    given: frozenset[str] = frozenset(SOURCE_COLUMNS)
    path: str = ""


class _Bad(ValueError):
    """Raised by a field parser; parse_record turns it into a Rejected."""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _clean(value: str, column: str) -> str | None:
    # Postgres text cannot hold NUL; stripping it silently would change the data, so reject instead.
    if "\x00" in value:
        raise _Bad(
            f"{column}: contains a NUL byte, which Postgres text cannot store: {_show(value)}"
        )
    return value.strip() or None


def _text(record: Mapping, column: str) -> str | None:
    value = record.get(column)
    if isinstance(value, str):
        return _clean(value, column)
    # pandas marks a missing cell as NaN; in a text column it can only mean "no value".
    if value is None or _is_nan(value):
        return None
    raise _Bad(f"{column}: not text: {_show(value)}")


def _full_name(record: Mapping) -> str:
    name = _text(record, "full_name")
    if name is None:
        raise _Bad("full_name: missing or empty")
    if not _FULL_NAME.fullmatch(name):
        raise _Bad(f"full_name: not an 'owner/name' repository name: {_show(name)}")
    return name


def _stars(value: object) -> int | None:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.isascii() and text.isdigit():  # the common case, without the regex
            return int(text)
        if not _NUMBER.fullmatch(text):
            raise _Bad(f"stars: not an integer: {_show(value)}")
        text = text.replace(",", "")
        value = float(text) if "." in text else int(text)
    if value is None:
        return None
    # bool is an Integral, but True stars is a data error, not 1.
    integral = isinstance(value, Integral) or (
        isinstance(value, Real) and float(value).is_integer()
    )
    if isinstance(value, bool) or not integral:
        raise _Bad(f"stars: not an integer: {_show(value)}")
    if value < 0:
        raise _Bad(f"stars: negative: {_show(value)}")
    return int(value)


def _topics(value: object) -> list[str]:
    if isinstance(value, str):
        items: list | tuple = value.split(";")
    elif isinstance(value, (list, tuple)):
        items = value
    elif value is None or _is_nan(value):
        return []
    else:
        raise _Bad(f"topics: not a list or ';'-joined text: {_show(value)}")
    topics = []
    for item in items:
        if not isinstance(item, str):
            raise _Bad(f"topics: element is not text: {_show(item)}")
        topic = _clean(item, "topics")
        if topic:
            topics.append(topic.lower())
    return list(dict.fromkeys(topics))


def _as_utc(value: datetime) -> datetime:
    # Naive times are taken as UTC, the zone the partitions are defined in.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@lru_cache(maxsize=65536)
def _parse_time_text(text: str) -> datetime | None:
    # Cached: a file typically repeats a handful of snapshot dates across thousands of rows.
    try:
        return _as_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _time(value: object, column: str) -> datetime:
    if isinstance(value, str):
        value = _clean(value, column)
        if value is not None:
            parsed = _parse_time_text(value)
            if parsed is None:
                raise _Bad(f"{column}: not a date: {_show(value)}")
            return parsed
    if isinstance(value, datetime) and value == value:  # NaT is a datetime unequal to itself
        # A pandas Timestamp becomes a plain datetime so the store sees one type.
        return _as_utc(value.to_pydatetime() if hasattr(value, "to_pydatetime") else value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value is None or _is_nan(value) or isinstance(value, datetime):
        raise _Bad(f"{column}: empty; a time is required")
    raise _Bad(f"{column}: not a date: {_show(value)}")


def parse_record(
    record: Mapping,
    row: int,
    *,
    time_column: str | None = None,
    load_time: datetime | None = None,
    earliest: datetime | None = None,
    latest: datetime | None = None,
) -> SourceRow | Rejected:
    """Validate one record (strings from a file or native Python values) into a SourceRow or a
    Rejected.

    The time comes from `time_column`, else `created_at` when the record has it, else `load_time`
    (now).
    """
    name = None
    try:
        name = _full_name(record)
        description, language = _text(record, "description"), _text(record, "language")
        url, readme = _text(record, "url"), _text(record, "readme")
        stars, topics = _stars(record.get("stars")), _topics(record.get("topics"))
        column = time_column or ("created_at" if "created_at" in record else None)
        if column is None:
            column, when = "load time", _as_utc(load_time or datetime.now(UTC))
        else:
            when = _time(record.get(column), column)
        if earliest is not None and when < (bound := _as_utc(earliest)):
            raise _Bad(
                f"{column}: {when.isoformat()} is before the earliest allowed {bound.isoformat()}"
            )
        if latest is not None and when > (bound := _as_utc(latest)):
            raise _Bad(
                f"{column}: {when.isoformat()} is after the latest allowed {bound.isoformat()}"
            )
        return SourceRow(name, description, language, stars, topics, url, readme, when)
    except _Bad as bad:
        return Rejected(row, name, str(bad))


def _format(path: Path) -> str:
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        expected = ", ".join(_FORMATS)
        raise LoaderError(
            f"{path}: unsupported file type {path.suffix!r}; expected one of {expected}"
        )
    if not path.is_file():
        raise LoaderError(f"{path}: file not found")
    return kind


def _csv_records(path: Path) -> Iterator[tuple[int, dict | Exception]]:
    # The stdlib reader keeps every value a string (nothing coerced, like dtype=str with
    # keep_default_na=False) and, unlike pandas, lets a ragged row be a reject instead of failing
    # the file.
    csv.field_size_limit(_MAX_CSV_FIELD)
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        try:
            header = [name.strip() for name in next(reader, [])]
            # Blank lines are skipped but still counted, so row numbers match what a spreadsheet
            # shows.
            for row, values in enumerate(reader, 1):
                if len(values) == len(header):
                    yield row, dict(zip(header, values, strict=True))
                elif values:
                    yield row, ValueError(f"expected {len(header)} fields, found {len(values)}")
        except UnicodeDecodeError as exc:
            # The decoder reads ahead of the parser, so only a lower bound on the line is known.
            where = f"after line {reader.line_num}"
            raise LoaderError(f"{path}: not valid UTF-8 {where}: {exc.reason}") from exc
        except csv.Error as exc:
            raise LoaderError(f"{path}: unreadable CSV at line {reader.line_num}: {exc}") from exc


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict | Exception]]:
    # Binary lines so that one badly encoded line is a reject rather than a failure of the whole
    # file.
    with path.open("rb") as file:
        for row, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line.decode("utf-8-sig"))
            except UnicodeDecodeError as exc:
                yield row, ValueError(f"not valid UTF-8: {exc.reason} at byte {exc.start}")
            except json.JSONDecodeError as exc:
                yield row, ValueError(f"invalid JSON: {exc.msg} at column {exc.colno}")
            else:
                is_object = isinstance(value, dict)
                yield row, value if is_object else ValueError(f"not a JSON object: {_show(value)}")


def _parquet_records(path: Path) -> Iterator[tuple[int, dict | Exception]]:
    batches = pq.ParquetFile(path).iter_batches()  # streamed, so memory stays at one batch of dicts
    yield from enumerate((record for batch in batches for record in batch.to_pylist()), 1)


def iter_records(path: str | Path) -> Iterator[tuple[int, dict | Exception]]:
    """Yield (row number, record) per data row; a row that cannot even be decoded comes as an
    Exception."""
    path = Path(path)
    readers = {"csv": _csv_records, "jsonl": _jsonl_records, "parquet": _parquet_records}
    return readers[_format(path)](path)


def read_columns(path: str | Path) -> list[str]:
    """Column names: the CSV header, the Parquet schema, or every key used in a JSON Lines file."""
    path = Path(path)
    kind = _format(path)
    if kind == "parquet":
        try:
            return pq.read_schema(path).names
        except pa.ArrowException as exc:
            raise LoaderError(f"{path}: unreadable Parquet: {exc}") from exc
    if kind == "jsonl":
        keys: dict[str, None] = {}
        for _, record in _jsonl_records(path):
            if isinstance(record, dict):
                keys.update(dict.fromkeys(record))
        return list(keys)
    with path.open(encoding="utf-8-sig", newline="") as file:
        try:
            header = [name.strip() for name in next(csv.reader(file), [])]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise LoaderError(f"{path}: unreadable CSV: {exc}") from exc
    if len(set(header)) != len(header):
        raise LoaderError(f"{path}: duplicate column names in header: {', '.join(header)}")
    return header


def read_source_file(
    path: str | Path,
    *,
    time_column: str | None = None,
    load_time: datetime | None = None,
    earliest: datetime | None = None,
    latest: datetime | None = None,
) -> ParsedFile:
    """Read a whole file; see parse_record for the time rules and the module docstring for
    errors."""
    path = Path(path)
    columns = read_columns(path)
    if "full_name" not in columns:
        raise LoaderError(
            f"{path}: no 'full_name' column; columns are: {', '.join(columns) or '(none)'}"
        )
    if time_column is not None and time_column not in columns:
        listed = ", ".join(columns)
        raise LoaderError(f"{path}: time column {time_column!r} not found; columns are: {listed}")
    # Decided per file, so a JSON line that lacks created_at is rejected rather than given the load
    # time.
    time_column = time_column or ("created_at" if "created_at" in columns else None)
    load_time = load_time or datetime.now(UTC)  # one load time for the whole file
    given = {c for c in SOURCE_COLUMNS if c in columns and c != "created_at"}
    timed = {"created_at"} if time_column else set()
    parsed = ParsedFile(given=frozenset(given | timed), path=str(path))
    first_row: dict[
        str, int
    ] = {}  # lower-cased full_name -> row; GitHub names are case-insensitive
    # Creating millions of small objects makes the cyclic GC rescan them over and over (half the
    # time
    # for 1M rows); they form no cycles, so pause it for the loop.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for row, record in iter_records(path):
            if isinstance(record, Exception):
                parsed.rejected.append(Rejected(row, None, str(record)))
                continue
            result = parse_record(
                record,
                row,
                time_column=time_column,
                load_time=load_time,
                earliest=earliest,
                latest=latest,
            )
            if isinstance(result, SourceRow):
                first = first_row.setdefault(result.full_name.lower(), row)
                if first != row:
                    result = Rejected(row, result.full_name, f"full_name: duplicate of row {first}")
            (parsed.rows if isinstance(result, SourceRow) else parsed.rejected).append(result)
    finally:
        if gc_was_enabled:
            gc.enable()
    return parsed


def upsert_rows(
    store,
    rows: Sequence[SourceRow],
    *,
    given: Collection[str] = SOURCE_COLUMNS,
    replace: bool = True,
    prune_keeping: Sequence[str] | None = None,
) -> dict:
    """Upsert validated rows into the source table (see `Store.upsert_source` for `given`,
    `replace` and `prune_keeping`): the one write path of every loader (a file's rows, GitHub's).
    """
    return store.upsert_source(
        [tuple(getattr(row, c) for c in SOURCE_COLUMNS) for row in rows],
        given=given,
        replace=replace,
        prune_keeping=prune_keeping,
    )


def upsert_file(store, parsed: ParsedFile, *, replace: bool = False, prune: bool = False) -> dict:
    """A file's rows by the load rules: a column the file lacks, or an empty value, keeps what
    is stored, and a row's time moves only when the file gives one; `replace`: the file is the
    whole truth for the rows it names (its empty values and missing columns clear them);
    `prune`: rows of the source table the file does not name are deleted.

    A rejected row with a readable full_name still names its row, which `prune` keeps; `prune`
    refuses a file that names no row, or has rejected rows whose name cannot be read."""
    prune_keeping = None
    if prune:
        unnamed = [r.row for r in parsed.rejected if r.full_name is None]
        if unnamed:
            raise LoaderError(
                f"{parsed.path}: --prune refused: {len(unnamed):,} rejected rows (row "
                f"{unnamed[0]} first) have no readable full_name, so the rows they stand for "
                "would be deleted; fix them, or load without --prune"
            )
        if not parsed.rows and not parsed.rejected:
            raise LoaderError(
                f"{parsed.path}: --prune refused: the file names no row, so every row of the "
                "source table would be deleted"
            )
        prune_keeping = [r.full_name for r in parsed.rejected]
    given = parsed.given
    if replace:
        given = frozenset(SOURCE_COLUMNS) - ({"created_at"} - parsed.given)
    return upsert_rows(
        store, parsed.rows, given=given, replace=replace, prune_keeping=prune_keeping
    )
