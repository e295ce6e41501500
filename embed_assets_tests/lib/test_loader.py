"""Tests for embed_assets.lib.sources.loader: every file is a tiny one written to tmp_path."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embed_assets.lib.sources.loader import (
    LoaderError,
    ParsedFile,
    Rejected,
    SourceRow,
    iter_records,
    parse_record,
    read_columns,
    read_source_file,
)

FORMATS = ["csv", "jsonl", "parquet"]
LOAD = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def write(tmp_path: Path, fmt: str, records: list[dict], name: str = "repos") -> Path:
    """Write records as CSV (lists ';'-joined, None empty), JSON Lines or Parquet."""
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "csv":
        columns = list(dict.fromkeys(key for record in records for key in record))
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, columns)
            writer.writeheader()
            for record in records:
                writer.writerow(
                    {
                        k: ";".join(v) if isinstance(v, list) else ("" if v is None else v)
                        for k, v in record.items()
                    }
                )
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pylist(records), path)
    return path


def read(path: Path, **kwargs) -> ParsedFile:
    return read_source_file(path, load_time=LOAD, **kwargs)


def reasons(parsed: ParsedFile) -> list[tuple[int, str]]:
    return [(r.row, r.reason) for r in parsed.rejected]


# --- whole rows, every format -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "topics", [["CLI", " cli ", "", "Data-Science"], "CLI; cli ;;Data-Science"]
)
def test_valid_row_is_normalised_in_every_format(tmp_path, fmt, topics):
    path = write(
        tmp_path,
        fmt,
        [
            {
                "full_name": " octo/hello-world ",
                "description": "  Hi 😎 &amp; 你好 <b>  ",
                "language": "Python",
                "stars": "1,234",
                "topics": topics,
                "url": "https://github.com/octo/hello-world",
                "readme": "  ",
                "forks": "3",
                "group": "g1",
                "snapshot_date": "2024-03-04",
            }
        ],
    )
    parsed = read(path, time_column="snapshot_date")
    assert parsed.rejected == []
    assert parsed.rows == [
        SourceRow(
            full_name="octo/hello-world",
            description="Hi 😎 &amp; 你好 <b>",
            language="Python",
            stars=1234,
            topics=["cli", "data-science"],
            url="https://github.com/octo/hello-world",
            readme=None,
            created_at=datetime(2024, 3, 4, tzinfo=UTC),
        )
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_rows_are_rejected_with_row_number_and_reason_and_the_rest_load(tmp_path, fmt):
    rows = [
        {"full_name": "a/ok", "stars": "", "description": "fine"},
        {"full_name": "  ", "stars": "", "description": ""},
        {"full_name": "noslash", "stars": "", "description": ""},
        {"full_name": "a/b/c", "stars": "", "description": ""},
        {"full_name": "bad name/x", "stars": "", "description": ""},
        {"full_name": "a/neg", "stars": "-3", "description": ""},
        {"full_name": "a/frac", "stars": "1.5", "description": ""},
        {"full_name": "a/nul", "stars": "", "description": "bad\x00byte"},
        {"full_name": "a/last", "stars": "7", "description": ""},
    ]
    parsed = read(write(tmp_path, fmt, rows))
    assert [r.full_name for r in parsed.rows] == ["a/ok", "a/last"]
    assert reasons(parsed) == [
        (2, "full_name: missing or empty"),
        (3, "full_name: not an 'owner/name' repository name: 'noslash'"),
        (4, "full_name: not an 'owner/name' repository name: 'a/b/c'"),
        (5, "full_name: not an 'owner/name' repository name: 'bad name/x'"),
        (6, "stars: negative: -3"),
        (7, "stars: not an integer: 1.5"),
        (8, "description: contains a NUL byte, which Postgres text cannot store: 'bad\\x00byte'"),
    ]
    assert [r.full_name for r in parsed.rejected] == [
        None,
        None,
        None,
        None,
        "a/neg",
        "a/frac",
        "a/nul",
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_duplicates_are_case_insensitive_and_the_later_row_is_rejected(tmp_path, fmt):
    rows = [
        {"full_name": "Foo/Bar", "stars": "1"},
        {"full_name": "x/y", "stars": "1"},
        {"full_name": "foo/bar", "stars": "2"},
        {"full_name": "p/q", "stars": "bad"},
        {"full_name": "P/Q", "stars": "3"},
    ]
    parsed = read(write(tmp_path, fmt, rows))
    # p/q's first row was rejected, so its later valid row is the one that loads.
    assert [(r.full_name, r.stars) for r in parsed.rows] == [("Foo/Bar", 1), ("x/y", 1), ("P/Q", 3)]
    assert parsed.rejected[0] == Rejected(3, "foo/bar", "full_name: duplicate of row 1")
    assert parsed.rejected[1] == Rejected(4, "p/q", "stars: not an integer: 'bad'")


@pytest.mark.parametrize("fmt", FORMATS)
def test_nul_byte_in_topics_or_time_is_rejected_naming_the_column(tmp_path, fmt):
    rows = [
        {"full_name": "a/t", "topics": "ok;b\x00ad", "created_at": "2024-01-01"},
        {"full_name": "a/c", "topics": "", "created_at": "2024-01-01\x00"},
        {"full_name": "a/\x00", "topics": "", "created_at": "2024-01-01"},
    ]
    parsed = read(write(tmp_path, fmt, rows))
    assert parsed.rows == []
    assert [(r.row, r.full_name, r.reason.split(":")[0]) for r in parsed.rejected] == [
        (1, "a/t", "topics"),
        (2, "a/c", "created_at"),
        (3, None, "full_name"),
    ]
    assert all("NUL byte" in r.reason for r in parsed.rejected)


# --- time ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_time_defaults_to_created_at_when_present_else_load_time(tmp_path, fmt):
    with_created = read(
        write(tmp_path, fmt, [{"full_name": "a/b", "created_at": "2020-02-03T04:05:06Z"}], "c")
    )
    assert with_created.rows[0].created_at == datetime(2020, 2, 3, 4, 5, 6, tzinfo=UTC)
    without = read(write(tmp_path, fmt, [{"full_name": "a/b", "snapshot_date": "2020-02-03"}], "n"))
    assert without.rows[0].created_at == LOAD


@pytest.mark.parametrize("fmt", FORMATS)
def test_time_column_overrides_created_at(tmp_path, fmt):
    path = write(
        tmp_path,
        fmt,
        [{"full_name": "a/b", "created_at": "2001-01-01", "snapshot_date": "2022-06-07"}],
    )
    assert read(path, time_column="snapshot_date").rows[0].created_at == datetime(
        2022, 6, 7, tzinfo=UTC
    )


def test_load_time_defaults_to_now_once_per_file(tmp_path):
    path = write(tmp_path, "csv", [{"full_name": "a/b"}, {"full_name": "c/d"}])
    before = datetime.now(UTC)
    rows = read_source_file(path).rows
    assert before <= rows[0].created_at <= datetime.now(UTC)
    assert rows[0].created_at == rows[1].created_at


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2019-03-04", datetime(2019, 3, 4, tzinfo=UTC)),
        ("2019-03-04T10:00:00Z", datetime(2019, 3, 4, 10, tzinfo=UTC)),
        ("2019-03-04T12:00:00+02:00", datetime(2019, 3, 4, 10, tzinfo=UTC)),
        ("2019-03-04 10:00:00", datetime(2019, 3, 4, 10, tzinfo=UTC)),
    ],
)
def test_time_text_formats(text, expected):
    row = parse_record({"full_name": "a/b", "snapshot_date": text}, 1, time_column="snapshot_date")
    assert row.created_at == expected and row.created_at.tzinfo == UTC


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_or_empty_time_is_rejected_naming_the_time_column(tmp_path, fmt):
    rows = [
        {"full_name": "a/x", "snapshot_date": "xyz"},
        {"full_name": "a/e", "snapshot_date": "  "},
        {"full_name": "a/ok", "snapshot_date": "2024-01-01"},
    ]
    parsed = read(write(tmp_path, fmt, rows), time_column="snapshot_date")
    assert [r.full_name for r in parsed.rows] == ["a/ok"]
    assert reasons(parsed) == [
        (1, "snapshot_date: not a date: 'xyz'"),
        (2, "snapshot_date: empty; a time is required"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_times_outside_bounds_are_rejected_with_the_bound(tmp_path, fmt):
    rows = [
        {"full_name": "a/early", "created_at": "2019-12-31T23:59:59Z"},
        {"full_name": "a/start", "created_at": "2020-01-01"},
        {"full_name": "a/end", "created_at": "2020-12-31T00:00:00+00:00"},
        {"full_name": "a/late", "created_at": "2021-01-01"},
    ]
    parsed = read(
        write(tmp_path, fmt, rows),
        earliest=datetime(2020, 1, 1, tzinfo=UTC),
        latest=datetime(2020, 12, 31),
    )  # a naive bound is UTC too
    assert [r.full_name for r in parsed.rows] == ["a/start", "a/end"]
    assert reasons(parsed) == [
        (
            1,
            "created_at: 2019-12-31T23:59:59+00:00 is before the earliest allowed "
            "2020-01-01T00:00:00+00:00",
        ),
        (
            4,
            "created_at: 2021-01-01T00:00:00+00:00 is after the latest allowed "
            "2020-12-31T00:00:00+00:00",
        ),
    ]


def test_load_time_is_checked_against_bounds_too():
    result = parse_record({"full_name": "a/b"}, 1, load_time=LOAD, latest=LOAD - timedelta(days=1))
    assert result == Rejected(
        1,
        "a/b",
        "load time: 2024-05-01T12:00:00+00:00 is after the latest allowed "
        "2024-04-30T12:00:00+00:00",
    )


# --- native values (the demo's generated rows) --------------------------------------------------


def test_parse_record_accepts_native_python_values():
    record = {
        "full_name": "demo/repo-1",
        "description": "Demo",
        "language": None,
        "stars": 5,
        "topics": ["Demo", "demo", "Go"],
        "url": None,
        "readme": "# Hi",
        "group": "g1",
        "created_at": datetime(2020, 1, 1, 12),
    }
    assert parse_record(record, 1) == SourceRow(
        full_name="demo/repo-1",
        description="Demo",
        language=None,
        stars=5,
        topics=["demo", "go"],
        url=None,
        readme="# Hi",
        created_at=datetime(2020, 1, 1, 12, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "value, expected",
    [
        (
            pd.Timestamp("2020-01-01 12:00", tz="Europe/Berlin"),
            datetime(2020, 1, 1, 11, tzinfo=UTC),
        ),
        (datetime(2020, 1, 1, 12, tzinfo=UTC), datetime(2020, 1, 1, 12, tzinfo=UTC)),
        (date(2020, 1, 1), datetime(2020, 1, 1, tzinfo=UTC)),
    ],
)
def test_native_times(value, expected):
    created = parse_record({"full_name": "a/b", "created_at": value}, 1).created_at
    assert created == expected and type(created) is datetime and created.tzinfo == UTC


@pytest.mark.parametrize(
    "value, reason",
    [
        (pd.NaT, "created_at: empty; a time is required"),
        (None, "created_at: empty; a time is required"),
        (1700000000, "created_at: not a date: 1700000000"),
    ],
)
def test_native_missing_or_wrong_times_are_rejected(value, reason):
    assert parse_record({"full_name": "a/b", "created_at": value}, 9) == Rejected(9, "a/b", reason)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1234", 1234),
        (1234, 1234),
        (1234.0, 1234),
        ("1,234", 1234),
        ("1234.0", 1234),
        (" 12 ", 12),
        ("", None),
        (None, None),
        (0, 0),
    ],
)
def test_stars_accepted(value, expected):
    assert parse_record({"full_name": "a/b", "stars": value}, 1, load_time=LOAD).stars == expected


@pytest.mark.parametrize(
    "value, reason",
    [
        ("abc", "stars: not an integer: 'abc'"),
        (True, "stars: not an integer: True"),
        (float("nan"), "stars: not an integer: nan"),
        ("NaN", "stars: not an integer: 'NaN'"),
        (1.5, "stars: not an integer: 1.5"),
        (-1, "stars: negative: -1"),
        ("-1,000", "stars: negative: -1000"),
        ("1,23", "stars: not an integer: '1,23'"),
        ("1_000", "stars: not an integer: '1_000'"),
        ([1], "stars: not an integer: [1]"),
    ],
)
def test_stars_rejected(value, reason):
    assert parse_record({"full_name": "a/b", "stars": value}, 1, load_time=LOAD).reason == reason


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"full_name": "a/b", "topics": ["ok", 3]}, "topics: element is not text: 3"),
        ({"full_name": "a/b", "topics": 3}, "topics: not a list or ';'-joined text: 3"),
        ({"full_name": "a/b", "description": 5}, "description: not text: 5"),
        ({"description": "x"}, "full_name: missing or empty"),
    ],
)
def test_wrong_native_types_are_rejected(record, reason):
    assert parse_record(record, 1, load_time=LOAD) == Rejected(1, record.get("full_name"), reason)


def test_long_bad_values_are_truncated_in_the_reason():
    name = "a/b c" + "x" * 200
    reason = parse_record({"full_name": name}, 1, load_time=LOAD).reason
    assert reason == "full_name: not an 'owner/name' repository name: " + repr(name)[:77] + "..."


def test_missing_text_and_nan_become_none_and_topics_empty():
    row = parse_record(
        {"full_name": "a/b", "description": float("nan"), "topics": None}, 1, load_time=LOAD
    )
    assert (row.description, row.language, row.topics, row.stars) == (None, None, [], None)


# --- format specifics ---------------------------------------------------------------------------


def test_csv_with_bom_and_quoted_multiline_fields(tmp_path):
    path = tmp_path / "repos.csv"
    path.write_bytes(
        (
            "\ufefffull_name,description,stars\r\n"
            'a/one,"line one\nline two, with comma and ""quotes""",1\r\n'
            "a/two,plain,abc\r\n"
        ).encode("utf-8")
    )
    assert read_columns(path) == ["full_name", "description", "stars"]
    parsed = read(path)
    assert parsed.rows[0].description == 'line one\nline two, with comma and "quotes"'
    assert parsed.rejected == [Rejected(2, "a/two", "stars: not an integer: 'abc'")]


def test_csv_ragged_row_is_rejected_and_blank_lines_are_counted(tmp_path):
    path = tmp_path / "repos.CSV"
    path.write_text("full_name,stars\na/b,1\n\na/c,1,extra\na/d\na/e,2\n", encoding="utf-8")
    parsed = read(path)
    assert [r.full_name for r in parsed.rows] == ["a/b", "a/e"]
    assert reasons(parsed) == [(3, "expected 2 fields, found 3"), (4, "expected 2 fields, found 1")]


def test_csv_values_are_not_coerced(tmp_path):
    path = tmp_path / "repos.csv"
    path.write_text("full_name,description,language\na/b,NA,null\n", encoding="utf-8")
    row = read(path).rows[0]
    assert (row.description, row.language) == ("NA", "null")


def test_jsonl_malformed_non_object_and_blank_lines(tmp_path):
    path = tmp_path / "repos.ndjson"
    path.write_bytes(
        b'\xef\xbb\xbf{"full_name": "a/one"}\n'
        b'{"full_name": "a/two",\n'
        b"\n"
        b"[1, 2]\n"
        b'"a/three"\n'
        b'{"full_name": "a/\xff"}\n'
        b'  {"full_name": "a/four", "stars": 3}  \r\n'
    )
    parsed = read(path)
    assert [(r.full_name, r.stars) for r in parsed.rows] == [("a/one", None), ("a/four", 3)]
    assert [row for row, _ in reasons(parsed)] == [2, 4, 5, 6]
    assert parsed.rejected[0].reason.startswith("invalid JSON: ")
    assert parsed.rejected[1].reason == "not a JSON object: [1, 2]"
    assert parsed.rejected[2].reason == "not a JSON object: 'a/three'"
    assert parsed.rejected[3].reason.startswith("not valid UTF-8")


def test_jsonl_line_without_created_at_is_rejected_when_the_file_has_it(tmp_path):
    path = write(
        tmp_path, "jsonl", [{"full_name": "a/b", "created_at": "2020-01-01"}, {"full_name": "c/d"}]
    )
    assert reasons(read(path)) == [(2, "created_at: empty; a time is required")]


def test_parquet_native_types(tmp_path):
    table = pa.table(
        {
            "full_name": ["a/b", "c/d"],
            "stars": pa.array([5, None], pa.int64()),
            "topics": pa.array([["X", "y"], None], pa.list_(pa.string())),
            "created_at": pa.array(
                [datetime(2020, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, 6, tzinfo=UTC)],
                pa.timestamp("us", tz="UTC"),
            ),
            "snapshot_date": pa.array([date(2022, 2, 2), date(2023, 3, 3)], pa.date32()),
        }
    )
    pq.write_table(table, tmp_path / "repos.parquet")
    rows = read(tmp_path / "repos.parquet").rows
    assert [(r.stars, r.topics, r.created_at) for r in rows] == [
        (5, ["x", "y"], datetime(2020, 1, 1, tzinfo=UTC)),
        (None, [], datetime(2021, 1, 1, 6, tzinfo=UTC)),
    ]
    by_snapshot = read(tmp_path / "repos.parquet", time_column="snapshot_date").rows
    assert by_snapshot[1].created_at == datetime(2023, 3, 3, tzinfo=UTC)


def test_iter_records_reports_undecodable_rows_as_exceptions(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"full_name": "a/b"}\nnot json\n', encoding="utf-8")
    (row1, rec1), (row2, rec2) = iter_records(path)
    assert (row1, rec1) == (1, {"full_name": "a/b"}) and row2 == 2 and isinstance(rec2, ValueError)


# --- whole-file errors --------------------------------------------------------------------------


def test_unknown_suffix_and_missing_file_raise(tmp_path):
    (tmp_path / "repos.txt").write_text("full_name\na/b\n")
    with pytest.raises(LoaderError, match=r"repos\.txt.*unsupported file type '\.txt'"):
        read_source_file(tmp_path / "repos.txt")
    with pytest.raises(LoaderError, match=r"nope\.csv: file not found"):
        read_source_file(tmp_path / "nope.csv")


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_full_name_column_raises(tmp_path, fmt):
    path = write(tmp_path, fmt, [{"name": "a/b", "stars": "1"}])
    with pytest.raises(LoaderError, match=r"no 'full_name' column; columns are: name, stars"):
        read_source_file(path)


def test_empty_csv_raises(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(LoaderError, match="no 'full_name' column"):
        read_source_file(tmp_path / "empty.csv")


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_time_column_raises_listing_columns(tmp_path, fmt):
    path = write(tmp_path, fmt, [{"full_name": "a/b", "created_at": "2020-01-01"}])
    with pytest.raises(
        LoaderError,
        match=r"time column 'snapshot_date' not found; columns are: full_name, created_at",
    ):
        read_source_file(path, time_column="snapshot_date")


def test_csv_duplicate_header_and_bad_encoding_raise(tmp_path):
    (tmp_path / "dup.csv").write_text("full_name,stars,stars\na/b,1,2\n")
    with pytest.raises(LoaderError, match="duplicate column names"):
        read_source_file(tmp_path / "dup.csv")
    (tmp_path / "latin1.csv").write_bytes("full_name,description\na/b,caf\xe9\n".encode("latin-1"))
    with pytest.raises(
        LoaderError, match=r"latin1\.csv: unreadable CSV: 'utf-8' codec can't decode"
    ):
        read_source_file(tmp_path / "latin1.csv")
    # Past the first read buffer the error surfaces while iterating rows.
    late = "full_name\n" + "".join(f"a/b{i}\n" for i in range(10_000)) + "a/caf\xe9\n"
    (tmp_path / "late.csv").write_bytes(late.encode("latin-1"))
    with pytest.raises(
        LoaderError, match=r"late\.csv: not valid UTF-8 after line \d+: invalid continuation byte"
    ):
        read_source_file(tmp_path / "late.csv")


def test_corrupt_parquet_raises(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(LoaderError, match=r"bad\.parquet: unreadable Parquet"):
        read_source_file(tmp_path / "bad.parquet")
