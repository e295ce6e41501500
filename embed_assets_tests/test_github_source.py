"""The GitHub source wired in: `embed-assets load --github/--github-starred` and the repositories
asset with EMBED_ASSETS_GITHUB_QUERY/STARRED, against the fake GitHub of github_server.py and the
real database; ETags in Postgres, shared by every process."""

import json
import subprocess
import sys
from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from embed_assets.cli import main
from embed_assets.definitions import build_definitions
from embed_assets.defs.resources import resources_from
from embed_assets.lib.settings import SettingError, Settings
from embed_assets.lib.store import SOURCE_COLUMNS
from embed_assets_tests.github_server import FakeGitHub, make_repositories, repository
from embed_assets_tests.helpers import asset_key, node

TOKEN = "ghp_source-TEST-SECRET-9876543210"
YEAR_2020 = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC))
FETCH_STATS = {
    "requests",
    "not_modified",
    "pages",
    "windows_split",
    "truncated_windows",
    "rate_limit_waits",
}


@pytest.fixture
def github_env(settings, monkeypatch):
    """The fake GitHub, requiring TOKEN, named by EMBED_ASSETS_GITHUB_URL; GITHUB_TOKEN set."""

    def start(repositories=None, **options):
        server = FakeGitHub(repositories, token=TOKEN, **options).__enter__()
        servers.append(server)
        monkeypatch.setenv("EMBED_ASSETS_GITHUB_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        return server

    servers: list[FakeGitHub] = []
    yield start
    for server in servers:
        server.__exit__(None, None, None)


def source_rows(store, settings) -> dict[str, tuple]:
    rows = store.execute(
        f"SELECT full_name, description, stars, created_at, url, topics "
        f'FROM "{settings.schema}".{settings.source_table}'
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def load(capsys, *argv) -> tuple[dict, str]:
    assert main(["load", *argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    return json.loads(captured.out), captured.err


# -- the CLI ---------------------------------------------------------------------------------


def test_load_github_fills_the_source_table_then_a_new_process_gets_304s_from_postgres(
    settings, store, github_env, capsys
):
    in_2020 = make_repositories(250, *YEAR_2020)
    before = make_repositories(20, datetime(2019, 1, 1, tzinfo=UTC), YEAR_2020[0], prefix="old")
    server = github_env(in_2020 + before)

    first, err = load(capsys, "--github", "", "--since", "2020-01-01", "--until", "2021-01-01")
    assert first == {
        "inserted": 250,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "changed": {c: 0 for c in SOURCE_COLUMNS[1:]},
        "rejected": 0,
        "requests": 3,
        "not_modified": 0,
        "pages": 3,
        "windows_split": 0,
        "truncated_windows": [],
        "incomplete_results": 0,
        "rate_limit_waits": 0,
        "seconds_waited": 0.0,
        "outside_window": 0,
    }
    assert "fetched 250 repositories from GitHub in 3 requests" in err
    assert server.requests[0].query["q"] == "created:2020-01-01T00:00:00Z..2020-12-31T23:59:59Z"
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in server.requests)
    stored = source_rows(store, settings)
    assert set(stored) == {r["full_name"] for r in in_2020}
    sample = in_2020[7]
    assert stored[sample["full_name"]] == (
        sample["description"],
        sample["stargazers_count"],
        datetime.fromisoformat(sample["created_at"]),
        sample["html_url"],
        sample["topics"],
    )
    assert store.etag_count() == 3  # one per page, with its body and next link

    # A new process: no ETag in memory, only those in Postgres. GitHub answers 304 to every page,
    # without a Link header, and spends no rate limit.
    spent = 5000 - server.rate_remaining
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "embed_assets.cli",
            "load",
            "--github",
            "",
            "--since",
            "2020-01-01",
            "--until",
            "2021-01-01",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 0, process.stderr
    assert TOKEN not in process.stdout + process.stderr
    second = json.loads(process.stdout)
    assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 0, 250)
    assert (second["requests"], second["not_modified"], second["pages"]) == (3, 3, 3)
    assert [r.status for r in server.requests[3:]] == [304, 304, 304]
    assert 5000 - server.rate_remaining == spent

    # A change on GitHub changes its page's ETag: that page is fetched again, the others are not.
    changed = next(r for r in in_2020 if r["full_name"] == sample["full_name"])
    changed["description"] = "rewritten upstream"
    third, _ = load(capsys, "--github", "", "--since", "2020-01-01", "--until", "2021-01-01")
    assert (third["inserted"], third["updated"], third["unchanged"]) == (0, 1, 249)
    assert third["not_modified"] == 2
    assert source_rows(store, settings)[sample["full_name"]][0] == "rewritten upstream"


def test_load_github_splits_a_window_over_the_cap_and_rejects_bad_items(
    settings, store, github_env, capsys
):
    january = make_repositories(
        1500, datetime(2021, 1, 1, tzinfo=UTC), datetime(2021, 2, 1, tzinfo=UTC)
    )
    bad = repository("not a name", "2021-01-10T00:00:00Z", description="bad")
    github_env(january + [bad])
    counts, err = load(
        capsys, "--github", "", "--since", "2021-01-01", "--until", "2021-02-01T00:00:00Z"
    )
    assert (counts["inserted"], counts["rejected"]) == (1500, 1)
    assert counts["windows_split"] >= 1 and counts["truncated_windows"] == []
    assert "rejected row" in err and "not an 'owner/name'" in err
    assert len(source_rows(store, settings)) == 1500


def test_load_github_starred_for_a_user_and_for_the_tokens_owner(
    settings, store, github_env, capsys, monkeypatch
):
    monkeypatch.setenv("EMBED_ASSETS_PARTITION_START", "2015-01-01")
    alice = make_repositories(130, *YEAR_2020, prefix="alice")
    early = repository("old/timer", "2012-03-04T05:06:07Z", description="before the partitions")
    mine = make_repositories(4, *YEAR_2020, prefix="mine")
    server = github_env(stars={"alice": alice + [early], "octocat": mine})

    counts, err = load(capsys, "--github-starred", "alice")
    assert (counts["inserted"], counts["rejected"], counts["outside_window"]) == (130, 0, 1)
    assert counts["pages"] == 2
    assert "1 created outside the window left out" in err
    assert {r.path for r in server.requests} == {"/users/alice/starred"}

    counts, _ = load(
        capsys, "--github-starred", "@me", "--since", "2020-01-01", "--until", "2021-01-01"
    )
    assert counts["inserted"] == 4
    assert server.requests[-1].path == "/user/starred"
    assert set(source_rows(store, settings)) == {r["full_name"] for r in alice + mine}


def test_load_github_without_a_token_warns_and_a_bad_token_is_a_scrubbed_error(
    settings, store, github_env, capsys, monkeypatch
):
    server = github_env(make_repositories(5, *YEAR_2020))
    server.token = None  # this fake accepts anyone
    monkeypatch.delenv("GITHUB_TOKEN")
    counts, err = load(capsys, "--github", "", "--since", "2020-01-01", "--until", "2021-01-01")
    assert counts["inserted"] == 5
    assert "GITHUB_TOKEN is not set" in err
    assert "authorization" not in server.requests[-1].headers

    server.token = TOKEN
    wrong = "ghp_wrong-SECRET-0000"
    monkeypatch.setenv("GITHUB_TOKEN", wrong)
    assert main(["load", "--github", "", "--since", "2020-01-01", "--until", "2021-01-01"]) == 2
    captured = capsys.readouterr()
    assert "HTTP 401" in captured.err and "GITHUB_TOKEN" in captured.err
    assert wrong not in captured.out + captured.err  # the fake echoes it; the CLI must not


def test_load_needs_exactly_one_source_and_sensible_options(settings, capsys):
    # No source: the repositories collection needs one (a files collection's load scans).
    assert main(["load"]) == 2
    assert "load: give a file, --github QUERY or --github-starred USER" in capsys.readouterr().err
    for argv, said in (
        (["load", "x.csv", "--github", "q"], "not allowed with argument path"),
        (
            ["load", "--github", "q", "--github-starred", "alice"],
            "not allowed with argument --github",
        ),
    ):
        with pytest.raises(SystemExit) as raised:
            main(argv)
        assert raised.value.code == 2
        assert said in capsys.readouterr().err
    assert main(["load", "--github", "q", "--time-column", "snapshot_date"]) == 2
    assert "--time-column applies to a file load" in capsys.readouterr().err
    assert main(["load", "--github", "q created:>2020-01-01"]) == 2
    assert "created: qualifier" in capsys.readouterr().err
    assert main(["load", "--github", "q", "--since", "2001-01-01"]) == 2
    assert "before the first partition" in capsys.readouterr().err
    assert main(["load", "x.csv", "--since", "2020-01-01"]) == 2
    assert "apply to --github" in capsys.readouterr().err


# -- the repositories asset ------------------------------------------------------------------


def materialise(settings, instance, partition):
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    tags = {ASSET_PARTITION_RANGE_START_TAG: partition, ASSET_PARTITION_RANGE_END_TAG: partition}
    result = job.execute_in_process(
        instance=instance, tags=tags, asset_selection=[asset_key("rows")]
    )
    assert result.success
    events = result.asset_materializations_for_node(node("rows"))
    assert len(events) == 1
    return result, {key: value.value for key, value in events[0].metadata.items()}


def everything_recorded(instance, result) -> str:
    """Every event of the run and its config, as text."""
    logs = instance.all_logs(result.run_id)
    run = instance.get_run_by_id(result.run_id)
    return "\n".join(map(repr, logs)) + repr(run.run_config) + repr(run.tags)


def test_the_asset_fetches_exactly_its_months_window_with_the_query(
    settings, store, github_env, monkeypatch, capfd
):
    year = make_repositories(400, *YEAR_2020)
    server = github_env(year)
    monkeypatch.setenv("EMBED_ASSETS_GITHUB_QUERY", "vector")
    configured = Settings.from_env()
    may = {
        r["full_name"]
        for r in year
        if r["created_at"].startswith("2020-05") and "vector" in r["description"]
    }
    assert len(may) >= 5
    with dg.instance_for_test() as instance:
        result, values = materialise(configured, instance, "2020-05-01")
        recorded = everything_recorded(instance, result)
    assert [r.query["q"] for r in server.requests] == [
        "vector created:2020-05-01T00:00:00Z..2020-05-31T23:59:59Z"
    ]
    assert set(source_rows(store, settings)) == may
    assert values["github_inserted"] == len(may) and values["github_rejected"] == 0
    for key in FETCH_STATS:
        assert f"github_{key}" in values, key
    assert (values["github_requests"], values["github_not_modified"]) == (1, 0)
    assert values["github_windows_split"] == 0 and values["github_truncated_windows"] == 0
    assert values["rows_in"] == len(may) and values["added"] == len(may)
    assert values["dagster/row_count"] == len(may)
    assert TOKEN not in recorded + repr(values)
    assert TOKEN not in "".join(capfd.readouterr())

    # A second run: one 304 answered from the ETag table, nothing written.
    with dg.instance_for_test() as instance:
        _, again = materialise(configured, instance, "2020-05-01")
    assert server.requests[-1].status == 304
    assert (again["github_requests"], again["github_not_modified"]) == (1, 1)
    assert (again["github_inserted"], again["github_unchanged"]) == (0, len(may))
    assert again["added"] == 0


def test_the_asset_keeps_the_starred_repositories_of_its_month(
    settings, store, github_env, monkeypatch
):
    stars = make_repositories(
        30, datetime(2020, 5, 1, tzinfo=UTC), datetime(2020, 6, 1, tzinfo=UTC), prefix="may"
    ) + make_repositories(40, *YEAR_2020, prefix="other")
    github_env(stars={"octocat": stars})
    monkeypatch.setenv("EMBED_ASSETS_GITHUB_STARRED", "@me")
    may = {r["full_name"] for r in stars if r["created_at"].startswith("2020-05")}
    with dg.instance_for_test() as instance:
        _, values = materialise(Settings.from_env(), instance, "2020-05-01")
    assert set(source_rows(store, settings)) == may
    assert values["github_inserted"] == len(may)
    assert values["github_outside_window"] == len(stars) - len(may)


def test_the_asset_without_a_github_source_makes_no_request(settings, store, github_env):
    server = github_env(make_repositories(10, *YEAR_2020))
    with dg.instance_for_test() as instance:
        _, values = materialise(Settings.from_env(), instance, "2020-05-01")
    assert server.requests == []
    assert not any(key.startswith("github_") for key in values)


# -- settings --------------------------------------------------------------------------------


def test_the_token_is_read_from_github_token_and_never_shown(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("EMBED_ASSETS_GITHUB_QUERY", "language:rust")
    settings = Settings.from_env()
    assert settings.github_token == TOKEN and settings.github_source
    assert TOKEN not in repr(settings)
    resource = resources_from(settings)["github"]
    assert resource.token.env_var_name == "GITHUB_TOKEN"  # Dagster shows the name only
    assert TOKEN not in repr(resource) and TOKEN not in repr(build_definitions(settings).resources)
    monkeypatch.delenv("GITHUB_TOKEN")
    assert resources_from(Settings.from_env())["github"].token is None


@pytest.mark.parametrize(
    "environ, named",
    [
        ({"EMBED_ASSETS_GITHUB_QUERY": "rust created:>2020-01-01"}, "EMBED_ASSETS_GITHUB_QUERY"),
        ({"EMBED_ASSETS_GITHUB_STARRED": "not a user"}, "EMBED_ASSETS_GITHUB_STARRED"),
        (
            {"EMBED_ASSETS_GITHUB_QUERY": "rust", "EMBED_ASSETS_GITHUB_STARRED": "alice"},
            "EMBED_ASSETS_GITHUB_STARRED",
        ),
        ({"EMBED_ASSETS_GITHUB_URL": "api.github.com"}, "EMBED_ASSETS_GITHUB_URL"),
    ],
)
def test_bad_github_settings_name_the_variable(environ, named):
    with pytest.raises(SettingError, match=named):
        Settings.from_env(environ)


def test_pages_not_fetched_for_a_month_are_forgotten(store):
    store.etag_put("https://api.github.com/search/repositories?q=old", '"a"', {"items": []}, None)
    store.etag_put("https://api.github.com/search/repositories?q=new", '"b"', {"items": []}, None)
    store.execute(
        f'UPDATE "{store.schema}".github_etags SET fetched_at = now() - interval '
        "'31 days' WHERE url LIKE '%q=old'"
    )
    assert store.etag_prune(30) == 1
    assert store.etag_get("https://api.github.com/search/repositories?q=old") is None
    assert store.etag_get("https://api.github.com/search/repositories?q=new")[0] == '"b"'
