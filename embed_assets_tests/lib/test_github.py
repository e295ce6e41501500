"""The GitHub source against a local fake of GitHub's REST API, with injected rate limits and
faults."""

import logging
import socket
from datetime import UTC, datetime

import httpx
import pytest

from embed_assets.lib.sources.github.client import GitHubClient, GitHubError, MemoryETags
from embed_assets.lib.sources.github.load import search_rows, starred_rows
from embed_assets_tests.github_server import FakeGitHub, make_repositories, repository

TOKEN = "ghp_test-VERY-SECRET-0123456789"
YEAR_2020 = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC))
NOW = 1_700_000_000.0  # the client's clock in rate-limit tests: 2023-11-14T22:13:20Z


def client(
    server: FakeGitHub, sleeps: list | None = None, token: str | None = TOKEN, **options
) -> GitHubClient:
    sleep = sleeps.append if sleeps is not None else _no_sleep
    return GitHubClient(token, base_url=server.url, sleep=sleep, **options)


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected wait of {seconds} s")


def names(rows) -> list[str]:
    return [row.full_name for row in rows]


def year_2020(count: int, **options) -> list[dict]:
    return make_repositories(count, *YEAR_2020, **options)


def test_search_follows_link_pages_with_githubs_headers():
    repos = year_2020(250)
    with FakeGitHub(repos, token=TOKEN) as server, client(server) as github:
        rows, rejected, stats = search_rows(github, "", *YEAR_2020)
    assert sorted(names(rows)) == sorted(r["full_name"] for r in repos)
    assert rejected == []
    assert (stats["requests"], stats["pages"], stats["windows_split"]) == (3, 3, 0)
    first, *rest = server.requests
    assert first.query == {
        "q": "created:2020-01-01T00:00:00Z..2020-12-31T23:59:59Z",
        "per_page": "100",
    }
    assert [r.query.get("page") for r in rest] == ["2", "3"]
    assert all(r.query["q"] == first.query["q"] for r in rest)
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["accept"] == "application/vnd.github+json"
    assert first.headers["x-github-api-version"] == "2022-11-28"
    assert first.headers["user-agent"].startswith("embed-assets")
    row = next(r for r in rows if r.full_name == repos[0]["full_name"])
    assert row.stars == repos[0]["stargazers_count"]
    assert row.url == f"https://github.com/{repos[0]['full_name']}"
    assert row.topics == repos[0]["topics"] and row.readme is None


def test_window_is_half_open_utc_and_words_filter_the_rest():
    inside = [
        repository("a/first-second", "2020-01-01T00:00:00Z", description="needle here"),
        repository("a/last-second", "2020-01-31T23:59:59Z", description="a needle"),
        repository("a/no-match", "2020-01-15T00:00:00Z", description="hay"),
    ]
    outside = [
        repository("a/needle-before", "2019-12-31T23:59:59Z"),
        repository("a/needle-at-end", "2020-02-01T00:00:00Z"),
    ]
    start, end = datetime(2020, 1, 1), datetime(2020, 2, 1)  # naive: taken as UTC
    with FakeGitHub(inside + outside) as server, client(server, token=None) as github:
        rows, _, _ = search_rows(github, "needle", start, end)
    assert sorted(names(rows)) == ["a/first-second", "a/last-second"]
    assert {row.created_at for row in rows} == {
        datetime(2020, 1, 1, tzinfo=UTC),
        datetime(2020, 1, 31, 23, 59, 59, tzinfo=UTC),
    }
    assert "authorization" not in server.requests[0].headers


def test_window_over_the_cap_is_split_and_comes_back_complete():
    january = make_repositories(
        2500, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    )
    others = year_2020(100, prefix="other")
    with FakeGitHub(january + others) as server, client(server) as github:
        rows, rejected, stats = search_rows(
            github, "", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
        )
    assert len(rows) == 2500 and rejected == []
    assert sorted(names(rows)) == sorted(r["full_name"] for r in january)
    assert stats["windows_split"] == 3  # 2,500 → two of ~1,250 → four of ~625
    assert stats["truncated_windows"] == [] and stats["duplicates"] == 0
    assert {r.status for r in server.requests} == {200}  # never asked past the cap


def test_one_second_over_the_cap_is_reported_truncated_not_silently_cut():
    second = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
    crowd = make_repositories(1200, second, datetime(2024, 3, 1, 12, 0, 1, tzinfo=UTC))
    with FakeGitHub(crowd) as server, client(server) as github:
        rows, _, stats = search_rows(
            github, "", datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
        )
    assert len(rows) == 1000
    assert stats["truncated_windows"] == [
        "2024-03-01T12:00:00Z..2024-03-01T12:00:00Z: 1000 of 1200"
    ]
    assert stats["windows_split"] >= 16  # a day halved down to one second
    assert {r.status for r in server.requests} == {200}


def test_fake_refuses_pages_past_the_cap_like_github():
    with FakeGitHub(year_2020(1100)) as server:
        response = httpx.get(
            f"{server.url}/search/repositories", params={"q": "repo", "per_page": 100, "page": 11}
        )
        last = httpx.get(
            f"{server.url}/search/repositories", params={"q": "repo", "per_page": 100, "page": 10}
        )
    assert response.status_code == 422
    assert "first 1000" in response.json()["message"]
    assert last.json()["total_count"] == 1100 and "next" not in last.links


def test_items_shifting_between_pages_are_deduplicated():
    repos = year_2020(150)
    newcomer = repository("late/arrival", "2020-06-01T00:00:00Z", stars=10**9)
    sleeps = []

    def sleep(seconds: float) -> None:  # while the client waits, a top repository appears
        sleeps.append(seconds)
        server.repositories.append(newcomer)

    with FakeGitHub(repos, faults=[None, "500"]) as server:
        with GitHubClient(None, base_url=server.url, sleep=sleep) as github:
            rows, _, stats = search_rows(github, "", *YEAR_2020)
    assert sleeps == [1.0]
    assert stats["duplicates"] == 1  # page 1's last item is page 2's first after the shift
    assert len(rows) == 150 and len(set(names(rows))) == 150
    assert set(names(rows)) == {r["full_name"] for r in repos}


def test_second_fetch_reuses_bodies_on_304():
    etags = MemoryETags()
    with FakeGitHub(year_2020(250)) as server, client(server, etags=etags) as github:
        first, _, cold = search_rows(github, "", *YEAR_2020)
        spent = 5000 - server.rate_remaining
        second, _, warm = search_rows(github, "", *YEAR_2020)
    assert second == first
    assert (cold["not_modified"], warm["not_modified"], warm["pages"]) == (0, 3, 3)
    assert warm["bytes"] * 20 < cold["bytes"]
    assert [r.status for r in server.requests[3:]] == [304, 304, 304]
    assert all(r.headers["if-none-match"].startswith('W/"') for r in server.requests[3:])
    assert "if-none-match" not in server.requests[0].headers
    assert 5000 - server.rate_remaining == spent == 3  # 304s are free


def test_primary_rate_limit_waits_until_the_reset():
    sleeps = []
    with FakeGitHub(year_2020(50), faults=["primary"], rate_reset=int(NOW) + 30) as server:
        with client(server, sleeps, clock=lambda: NOW) as github:
            rows, _, stats = search_rows(github, "", *YEAR_2020)
    assert sleeps == [31.0]  # until the reset, plus one second of margin
    assert len(rows) == 50
    assert (stats["rate_limit_waits"], stats["seconds_waited"], stats["requests"]) == (1, 31.0, 2)


def test_primary_rate_limit_longer_than_max_wait_fails_naming_the_reset():
    sleeps = []
    with FakeGitHub(year_2020(50), faults=["primary"], rate_reset=int(NOW) + 3600) as server:
        with client(server, sleeps, clock=lambda: NOW, max_wait=600) as github:
            with pytest.raises(GitHubError, match="exhausted until 2023-11-14T23:13:20Z"):
                search_rows(github, "", *YEAR_2020)
    assert sleeps == []


def test_secondary_rate_limits_use_retry_after_else_back_off_from_a_minute():
    sleeps = []
    faults = ["secondary", "secondary-bare", "429", "secondary-bare"]
    with FakeGitHub(year_2020(50), faults=faults, retry_after=7) as server:
        with client(server, sleeps, max_wait=200) as github:
            rows, _, stats = search_rows(github, "", *YEAR_2020)
    assert sleeps == [7.0, 60.0, 120.0, 200.0]  # 240 capped by max_wait
    assert len(rows) == 50 and stats["rate_limit_waits"] == 4


def test_proactive_pause_when_a_success_spends_the_budget():
    sleeps = []
    stars = {"alice": year_2020(150)}
    with FakeGitHub(stars=stars, rate_remaining=1, rate_reset=int(NOW) + 20) as server:
        with client(server, sleeps, clock=lambda: NOW) as github:
            rows, _, stats = starred_rows(github, "alice")
    assert sleeps == [21.0]  # once, before page 2; nothing is requested after page 2
    assert len(rows) == 150 and stats["requests"] == 2


def test_server_errors_are_retried_with_backoff():
    sleeps = []
    with FakeGitHub(year_2020(150), faults=["500", "502"]) as server:
        with client(server, sleeps) as github:
            rows, _, stats = search_rows(github, "", *YEAR_2020)
    assert sleeps == [1.0, 2.0]
    assert len(rows) == 150
    assert (stats["requests"], stats["retries"], stats["rate_limit_waits"]) == (4, 2, 0)


def test_attempts_are_bounded():
    sleeps = []
    with FakeGitHub(year_2020(10), faults=["500"] * 5) as server:
        with client(server, sleeps, max_attempts=3) as github:
            with pytest.raises(GitHubError, match="failed 3 attempts; last: HTTP 500"):
                search_rows(github, "", *YEAR_2020)
    assert sleeps == [1.0, 2.0] and len(server.requests) == 3


def test_connection_errors_are_retried_then_fail():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = []
    github = GitHubClient(
        TOKEN, base_url=f"http://127.0.0.1:{port}", sleep=sleeps.append, max_attempts=3
    )
    with github, pytest.raises(GitHubError, match="failed 3 attempts; last: ConnectError"):
        starred_rows(github, "alice")
    assert sleeps == [1.0, 2.0]


def test_the_token_never_appears_in_errors_logs_or_reprs(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeGitHub(token="ghp_the-right-one", faults=["500"]) as server:
        with client(server, []) as github:
            with pytest.raises(GitHubError) as raised:
                starred_rows(github)
            shown = repr(github)
    message = str(raised.value)
    assert "HTTP 401" in message and "Bad credentials" in message and "GITHUB_TOKEN" in message
    assert server.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"  # it was sent...
    assert "HTTP 500" in caplog.text  # ...a retry was logged...
    for text in (message, repr(raised.value), caplog.text, shown):  # ...and never shown
        assert TOKEN not in text


def test_unknown_user_is_a_clear_error():
    with FakeGitHub(stars={"alice": []}) as server, client(server) as github:
        with pytest.raises(GitHubError, match=r"HTTP 404 to GET /users/nobody/starred: Not Found"):
            starred_rows(github, "nobody")


def test_starred_follows_pages_for_a_user_and_for_the_token_owner():
    alice, mine = year_2020(230), year_2020(3, prefix="mine")
    with FakeGitHub(stars={"alice": alice, "octocat": mine}) as server, client(server) as github:
        rows, _, stats = starred_rows(github, "alice")
        own, _, _ = starred_rows(github)
    assert names(rows) == [r["full_name"] for r in alice]  # GitHub's order, kept
    assert stats["pages"] == 3
    assert [r.path for r in server.requests] == ["/users/alice/starred"] * 3 + ["/user/starred"]
    assert [r.query.get("page") for r in server.requests[:3]] == [None, "2", "3"]
    assert names(own) == [r["full_name"] for r in mine]


def test_bad_items_are_rejected_with_a_reason_and_the_rest_kept():
    good = year_2020(3)
    bad = [
        repository("not a repository name", "2020-05-05T00:00:00Z"),
        repository("someone/no-time", None),
        {**repository("someone/odd-stars", "2020-05-05T00:00:00Z"), "stargazers_count": -4},
    ]
    with FakeGitHub(stars={"alice": good[:2] + bad + good[2:]}) as server, client(server) as github:
        rows, rejected, _ = starred_rows(github, "alice")
    assert names(rows) == [r["full_name"] for r in good]
    assert [(r.row, r.full_name) for r in rejected] == [
        (3, None),
        (4, "someone/no-time"),
        (5, "someone/odd-stars"),
    ]
    assert "full_name: not an 'owner/name'" in rejected[0].reason
    assert rejected[1].reason == "created_at: empty; a time is required"
    assert "stars: negative" in rejected[2].reason


def test_windows_must_be_whole_seconds_and_not_empty():
    with GitHubClient(None, base_url="http://127.0.0.1:9", sleep=_no_sleep) as github:
        with pytest.raises(ValueError, match="whole seconds"):
            github.search_repositories("", datetime(2020, 1, 1, 0, 0, 0, 5), datetime(2020, 2, 1))
        with pytest.raises(ValueError, match="empty window"):
            github.search_repositories("", datetime(2020, 2, 1), datetime(2020, 1, 1))
