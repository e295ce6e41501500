"""The CLI as a process: reading commands never import Dagster or scikit-learn, and bad input or an
unreachable database is one line on stderr with exit code 2 (usage) or 1 (failure), never a
traceback unless --debug, never a password."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embed_assets.cli import main
from embed_assets_tests.helpers import source_row

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("dagster", "dagster_postgres", "sklearn", "scipy")
# Runs the CLI, then reports on stderr which heavy packages the process imported.
PROBE = (
    "import json, sys\n"
    "from embed_assets.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as stop:\n"
    "    code = stop.code\n"
    f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
    "print('IMPORTED ' + json.dumps(heavy), file=sys.stderr)\n"
    "raise SystemExit(code)\n"
)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=ROOT,
        env=os.environ | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )


def imported(process: subprocess.CompletedProcess) -> list[str]:
    line = next(ln for ln in process.stderr.splitlines() if ln.startswith("IMPORTED "))
    return json.loads(line.removeprefix("IMPORTED "))


def error_lines(process: subprocess.CompletedProcess) -> list[str]:
    """The lines of stderr that are not progress (which a sync prints before it fails)."""
    progress = ("IMPORTED ", "reading the change log")
    return [ln for ln in process.stderr.splitlines() if not ln.startswith(progress)]


def loaded_and_synced(store, capsys, rows: int) -> None:
    store.upsert_source(
        [source_row(f"acme/web-{i}", f"web framework number {i}") for i in range(rows)]
    )
    assert main(["sync"]) == 0
    capsys.readouterr()


def test_reading_commands_and_a_sync_with_nothing_to_do_never_import_dagster(store, capsys):
    loaded_and_synced(store, capsys, 12)
    for command in (
        ["--help"],
        ["status"],
        ["search", "web framework"],
        ["clusters"],
        ["spaces"],
        ["cache", "stats"],
        ["collections"],
        ["sync"],  # nothing changed since the demo's sync
    ):
        process = cli(*command)
        assert process.returncode == 0, (command, process.stderr)
        assert imported(process) == [], command
    synced = cli("sync", "--json")
    assert json.loads(synced.stdout)["partitions"] == 0


def test_a_sync_with_work_imports_dagster_and_runs(store, capsys):
    loaded_and_synced(store, capsys, 3)
    store.upsert_source([source_row("acme/new", "a row the demo did not have")])
    process = cli("sync", "--json")
    assert process.returncode == 0, process.stderr
    assert "dagster" in imported(process)
    assert json.loads(process.stdout)["embedded"] == 1


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("postgresql://alice:s3cret-pw@127.0.0.1:9/embed", "Connection refused"),
        ("postgresql://alice:s3cret-pw@no-such-host.invalid:5432/embed", "resolve host"),
    ],
)
def test_an_unreachable_database_is_one_line_naming_the_host_within_five_seconds(
    settings, url, why
):
    for command in (["status"], ["sync"], ["search", "anything"]):
        began = time.perf_counter()
        process = cli(*command, env={"EMBED_ASSETS_DATABASE_URL": url})
        assert time.perf_counter() - began < 5 + 3  # the process's own start beside the 5 s
        assert process.returncode == 1, process.stderr
        (line,) = error_lines(process)
        host = url.split("@")[1].split("/")[0]
        assert line.startswith(f"embed-assets: error: cannot connect to the database at {host}")
        assert why in line and "s3cret-pw" not in process.stderr + process.stdout


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        (
            {"EMBED_ASSETS_DATABASE_URL": "mysql://alice:s3cret-pw@db/embed"},
            ["status"],
            "EMBED_ASSETS_DATABASE_URL must be a postgresql:// URL, got 'mysql://alice:***@db/embed'",
        ),
        (
            {"EMBED_ASSETS_DATABASE_URL": "not a url"},
            ["sync"],
            "EMBED_ASSETS_DATABASE_URL must be a postgresql:// URL, got 'not a url'",
        ),
        (
            {"EMBED_ASSETS_BATCH_SIZE": "0"},
            ["sync"],
            "EMBED_ASSETS_BATCH_SIZE must be a positive integer (unset it for the default)",
        ),
        ({}, ["search"], "the following arguments are required: query"),
        ({}, ["status", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        ({}, ["clusters", "show", "12", "--collection", "nope"], "nope"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(settings, env, args, message):
    process = cli(*args, env=env)
    assert process.returncode == 2, process.stderr
    (line,) = error_lines(process)
    assert line.startswith("embed-assets: error: ") and message in line, line
    assert "s3cret-pw" not in process.stderr


def test_debug_shows_the_traceback(settings):
    env = {"EMBED_ASSETS_DATABASE_URL": "postgresql://alice:pw@127.0.0.1:9/embed"}
    quiet = cli("status", env=env)
    assert "Traceback" not in quiet.stderr
    loud = cli("status", "--debug", env=env)
    assert loud.returncode != 0 and "Traceback" in loud.stderr
    assert "DatabaseUnreachable" in loud.stderr
