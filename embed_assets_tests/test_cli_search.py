"""`embed-assets search`: its text output, its JSON, its modes and its usage errors."""

import json

import pytest

from embed_assets.cli import main
from embed_assets.lib import search as search_module
from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets_tests.helpers import source_row
from embed_assets_tests.lib.test_pipeline import materialise

LONG = "A fast parser for configuration files. " * 20  # ~780 characters


@pytest.fixture
def embedded(settings, store):
    store.upsert_source(
        [
            source_row("acme/conf", LONG, language="Rust", stars=1234),
            source_row("acme/tiny", "A tiny web server", language=None, stars=None),
        ]
    )
    materialise(store, OfflineHashingProvider(), max_chars=1500, overlap=200)
    yield
    search_module.forget(settings)


def test_text_output_shows_score_key_metadata_and_a_cut_snippet(embedded, capsys):
    assert main(["search", "configuration parser", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # two hits, two lines each
    first, snippet = lines[0].split(), lines[1]
    assert first[0] == "1." and float(first[1]) == pytest.approx(1.0)
    assert first[2:] == ["acme/conf", "Rust", "1,234", "stars", "https://github.com/acme/conf"]
    assert snippet.strip().startswith("A fast parser for configuration files.")
    assert snippet.endswith("…") and len(snippet.strip()) <= 161
    assert "acme/conf" not in snippet  # the name line the chunk starts with is not repeated
    assert lines[2].split()[2:] == ["acme/tiny", "no", "language", "0", "stars"] + [
        "https://github.com/acme/tiny"
    ]
    assert lines[3].strip() == "A tiny web server"  # short: whole, no ellipsis


def test_json_carries_the_metadata_and_each_mode_answers(embedded, capsys):
    for mode in ("hybrid", "vector", "text"):
        assert main(["search", "web server", "--mode", mode, "--json"]) == 0
        hits = json.loads(capsys.readouterr().out)
        assert hits[0]["key"] == "acme/tiny", mode
        assert hits[0]["metadata"] == {
            "language": None,
            "stars": None,
            "url": "https://github.com/acme/tiny",
        }
    assert main(["search", "web server", "--mode", "text", "--json"]) == 0
    assert [h["key"] for h in json.loads(capsys.readouterr().out)] == ["acme/tiny"]
    assert main(["search", "web server", "--mode", "vector", "--min-score", "0.99"]) == 0
    assert capsys.readouterr().out.strip() == "no results"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "x", "-k", "0"], "k must be between 1 and 100 (results), got 0"),
        (["search", "x", "-k", "-3"], "k must be between 1 and 100 (results), got -3"),
        (["search", "x", "-k", "101"], "k must be between 1 and 100 (results), got 101"),
        (["search", ""], "the query is empty: give the words to search for"),
        (["search", "   "], "the query is empty: give the words to search for"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(settings, capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"embed-assets: error: {message}\n"


def test_the_help_says_the_cap_and_the_modes(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "1 to 100" in shown and "{hybrid,vector,text}" in shown and "--min-score" in shown
