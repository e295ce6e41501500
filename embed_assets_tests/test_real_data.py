"""The issue's acceptance path on the real 24,399-repository file, when it is there.

A fresh clone has no ../shared: then this test is skipped, and the rest of the suite covers the
same behaviour on generated data."""

import json
from pathlib import Path

import pytest

from embed_assets.cli import main
from embed_assets.lib.store import SOURCE_COLUMNS

REAL_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "github_repos.csv"


@pytest.mark.skipif(not REAL_FILE.exists(), reason=f"real data file not present at {REAL_FILE}")
def test_load_and_sync_the_real_file(settings, capsys):
    def run(*argv):
        assert main([*argv, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    loaded = run("load", str(REAL_FILE), "--time-column", "snapshot_date")
    assert loaded["changed"] == {c: 0 for c in SOURCE_COLUMNS[1:]}
    assert (loaded["inserted"], loaded["updated"], loaded["deleted"]) == (24_399, 0, 0)
    first = run("sync")
    status = run("status")
    assert status["pending"] == 0 and status["embeddings"] == status["chunks"] == first["embedded"]
    assert status["repositories"] == 24_399
    assert run("sync")["embedded"] == 0
    assert run("load", str(REAL_FILE), "--time-column", "snapshot_date")["unchanged"] == 24_399
