"""The sample data generator: deterministic, realistic, and written in the three supported
formats."""

import collections
import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from embed_assets.lib.sample import (
    FIELDS,
    GROUP_NAMES,
    generate_repositories,
    iter_repositories,
    write_sample,
)

# GitHub: owners are letters, digits and single inner hyphens (at most 39); repositories add "_"
# and ".".
FULL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}/[A-Za-z0-9._-]{1,100}")
TOPIC = re.compile(r"[a-z0-9][a-z0-9-]{0,49}")


@pytest.fixture(scope="module")
def rows():
    return generate_repositories(20_000)


def _digest(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, default=str, ensure_ascii=False).encode()).hexdigest()


def test_same_seed_gives_the_same_rows_and_another_seed_other_rows():
    assert generate_repositories(3_000, seed=7) == generate_repositories(3_000, seed=7)
    a, b = generate_repositories(2_000, seed=1), generate_repositories(2_000, seed=2)
    assert sum(x != y for x, y in zip(a, b, strict=True)) > 1_950
    assert len({r["full_name"] for r in a} & {r["full_name"] for r in b}) < 100


def test_a_prefix_of_a_longer_sample_is_the_shorter_sample():
    longer = generate_repositories(2_500, seed=3)
    assert longer[:1_234] == generate_repositories(1_234, seed=3)
    assert longer[:1] == generate_repositories(1, seed=3)
    assert generate_repositories(0) == []
    stream = iter_repositories(seed=3)
    assert [next(stream) for _ in range(2_500)] == longer


def test_rows_are_the_same_in_other_processes_whatever_their_hash_seed():
    code = (
        "import hashlib, json\n"
        "from embed_assets.lib.sample import generate_repositories\n"
        "rows = generate_repositories(3000, seed=5)\n"
        "print(hashlib.sha256(json.dumps(rows, default=str, "
        "ensure_ascii=False).encode()).hexdigest())\n"
    )
    digests = set()
    for hash_seed in ("1", "987654"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert done.returncode == 0, done.stderr
        digests.add(done.stdout.strip())
    assert digests == {_digest(generate_repositories(3_000, seed=5))}


def test_full_names_are_unique_and_github_legal():
    names = [row["full_name"] for row in generate_repositories(50_000, seed=11)]
    assert len({name.lower() for name in names}) == len(names)  # GitHub names are case-insensitive
    bad = [
        name for name in names if not FULL_NAME.fullmatch(name) or name.split("/")[1] in (".", "..")
    ]
    assert bad == []


def test_fields_have_the_promised_types_and_ranges(rows):
    start = datetime(2010, 1, 1, tzinfo=UTC)
    end = datetime(2026, 1, 1, tzinfo=UTC)
    for row in rows:
        assert tuple(row) == FIELDS
        assert all(
            isinstance(row[key], str)
            for key in ("full_name", "description", "language", "url", "readme")
        )
        assert row["url"] == "https://github.com/" + row["full_name"]
        assert type(row["stars"]) is int and row["stars"] >= 0
        assert isinstance(row["topics"], list) and len(row["topics"]) <= 6
        assert len(set(row["topics"])) == len(row["topics"])
        assert all(TOPIC.fullmatch(topic) for topic in row["topics"]), row["topics"]
        assert isinstance(row["created_at"], datetime) and row[
            "created_at"
        ].utcoffset() == timedelta(0)
        assert start <= row["created_at"] < end
        assert row["group"] in GROUP_NAMES
        assert "\n" not in row["description"]


def test_shares_of_empty_values_readmes_and_stars_are_realistic(rows):
    def share(predicate) -> float:
        return sum(map(predicate, rows)) / len(rows)

    assert 0.01 < share(lambda r: r["description"] == "") < 0.035
    assert 0.08 < share(lambda r: r["language"] == "") < 0.12
    assert 0.30 < share(lambda r: not r["topics"]) < 0.50
    assert 0.08 < share(lambda r: r["readme"] != "") < 0.12
    stars = sorted(row["stars"] for row in rows)
    assert stars[len(stars) // 2] <= 5 and stars[-1] > 5_000  # heavy-tailed


def test_readmes_have_several_paragraphs_and_some_are_long(rows):
    readmes = [row["readme"] for row in rows if row["readme"]]
    assert sum(len(readme) > 3_000 for readme in readmes) > len(readmes) * 0.1
    for readme in readmes:
        blocks = readme.split("\n\n")
        assert blocks[0].startswith("# ")
        paragraphs = [
            b for b in blocks[1:] if not b.startswith(("#", "```")) and b.count(". ") >= 2
        ]
        assert 3 <= len(paragraphs) <= 12


def test_created_at_spreads_over_the_years_with_growing_volume():
    rows = generate_repositories(5_000, seed=2, start=date(2020, 3, 1), end=date(2020, 3, 31))
    assert {row["created_at"].date() for row in rows} == {
        date(2020, 3, day) for day in range(1, 32)
    }
    years = collections.Counter(row["created_at"].year for row in generate_repositories(20_000))
    assert set(years) == set(range(2010, 2026))
    assert years[2025] > 2 * years[2011]


def test_many_groups_with_their_own_words_and_some_non_ascii(rows):
    groups = collections.defaultdict(list)
    for row in rows:
        groups[row["group"]].append(set(re.findall(r"[a-z]{4,}", row["description"].lower())))
    assert len(groups) >= 40

    def overlap(a: set, b: set) -> float:
        return len(a & b) / len(a | b) if a | b else 0.0

    same = [
        overlap(words[i], words[i + 1]) for words in groups.values() for i in range(len(words) - 1)
    ]
    first = [words[0] for words in groups.values()]
    other = [overlap(a, b) for i, a in enumerate(first) for b in first[i + 1 :]]
    assert sum(same) / len(same) > 3 * sum(other) / len(other)
    descriptions = [row["description"] for row in rows]
    assert any(
        re.search(r"[\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af]", d) for d in descriptions
    )  # CJK
    assert any(re.search(r"[éèçãáó]", d) for d in descriptions)
    assert 0.002 < sum(not d.isascii() for d in descriptions) / len(descriptions) < 0.2


def _read_back(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        records = frame.to_dict("records")
        for record in records:
            record["stars"] = int(record["stars"])
            record["topics"] = record["topics"].split(";") if record["topics"] else []
            record["created_at"] = datetime.fromisoformat(record["created_at"])
        return records
    if path.suffix == ".jsonl":
        records = pd.read_json(path, lines=True, dtype=False).to_dict("records")
        for record in records:
            when = record["created_at"]
            record["created_at"] = (
                when if isinstance(when, datetime) else datetime.fromisoformat(when)
            )
        return records
    return pq.read_table(path).to_pylist()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_write_sample_round_trips(tmp_path, suffix):
    path = tmp_path / f"sample{suffix}"
    assert write_sample(path, 1_500, seed=4) == 1_500
    expected, found = generate_repositories(1_500, seed=4), _read_back(path)
    assert len(found) == len(expected)
    with_readme = next(i for i, row in enumerate(expected) if len(row["readme"]) > 3_000)
    non_ascii = next(i for i, row in enumerate(expected) if not row["description"].isascii())
    for i in (0, 1, 2, with_readme, non_ascii, len(expected) - 1):
        assert {key: found[i][key] for key in FIELDS} == expected[i]
    assert [row["full_name"] for row in found] == [row["full_name"] for row in expected]


def test_write_sample_with_no_rows_writes_just_a_header(tmp_path):
    path = tmp_path / "empty.csv"
    assert write_sample(str(path), 0) == 0
    assert path.read_text(encoding="utf-8").strip() == ",".join(FIELDS)


def test_unknown_suffix_is_refused_with_the_supported_ones(tmp_path):
    path = tmp_path / "sample.xlsx"
    with pytest.raises(ValueError, match=r"'\.xlsx'.*\.csv, \.jsonl, \.parquet"):
        write_sample(path, 10)
    assert not path.exists()
    with pytest.raises(ValueError, match="none"):
        write_sample(tmp_path / "sample", 10)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="n must be"):
        generate_repositories(-1)
    with pytest.raises(ValueError, match="seed"):
        generate_repositories(10, seed=-3)
    with pytest.raises(ValueError, match="after"):
        generate_repositories(10, start=date(2020, 1, 2), end=date(2020, 1, 1))
