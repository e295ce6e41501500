"""The install check stops on a Dagster library of another release line."""

import os
import subprocess
import sys
from pathlib import Path

from embed_assets_tests.install_check import install_problems

ROOT = Path(__file__).resolve().parents[1]


def test_this_install_is_one_release_line():
    assert install_problems() == []


def fake_distribution(folder: Path, name: str, version: str) -> None:
    """A dist-info of `name` at `version` found before the real one on sys.path: what pip leaves
    when it backtracks to an old release of one package."""
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def run_check(extra_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(extra_path), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "embed_assets_tests.install_check"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_a_library_of_another_line_stops_with_what_to_run(tmp_path):
    fake_distribution(tmp_path, "dagster-postgres", "0.11.14")
    result = run_check(tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "dagster-postgres 0.11.14 is not of dagster" in lines[0]
    assert "make reinstall" in lines[0]


def test_the_test_session_stops_before_any_test(tmp_path):
    fake_distribution(tmp_path, "dagster-postgres", "0.11.14")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "embed_assets_tests/test_install.py::test_this_install_is_one_release_line",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode != 0
    assert "broken install: dagster-postgres 0.11.14" in result.stdout + result.stderr
    assert "1 passed" not in result.stdout
