"""The provider budget shared through the database: reservations from separate connections draw
on one row, a hold stops every one of them, and three processes sharing a 600-requests-per-minute
budget never exceed it at the server, which records when each request arrived."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embed_assets.defs.resources import DatabaseResource, EmbeddingProviderResource
from embed_assets.lib.budget import SharedBudget
from embed_assets.lib.providers.client import LocalBudget
from embed_assets.lib.settings import SettingError, Settings
from embed_assets_tests.provider_servers import FakeEmbeddingServer

ROOT = Path(__file__).resolve().parents[2]
RPM = 600  # one request every 0.1 s
PER_PROCESS = 12
HOLD = 1.0  # the Retry-After of the one 429


def test_two_connections_take_consecutive_slots_of_one_budget(settings):
    first = SharedBudget(settings.database_url, settings, "b", RPM, 6000)
    second = SharedBudget(settings.database_url, settings, "b", RPM, 6000)
    try:
        # Requests: 0.1 s each; tokens: 6000 a minute, so 50 tokens are 0.5 s of the budget.
        waits = [first.reserve(1), second.reserve(1), first.reserve(50), second.reserve(1)]
        assert waits[0] == pytest.approx(0, abs=0.02)
        assert waits[1] == pytest.approx(0.1, abs=0.02)  # after the first, though another client
        assert waits[2] == pytest.approx(0.2, abs=0.02)
        # The third request's 50 tokens hold the budget until 0.7 s: the fourth's slot starts
        # then, not at 0.3 s when its request slot alone would be free.
        assert waits[3] == pytest.approx(0.7, abs=0.02)
        assert not second.held()
        first.hold(2.0)
        assert second.held()
        assert second.reserve(1) == pytest.approx(2.0, abs=0.05)  # held, then paced from its end
        other = SharedBudget(settings.database_url, settings, "another", RPM, 0)
        assert other.reserve(1) == pytest.approx(0, abs=0.02) and not other.held()
        other.close()
    finally:
        first.close()
        second.close()


def both_limits_sends(budget) -> list[float]:
    """When each of a 50-token request and five 1-token ones may be sent, under 60 requests and
    600 tokens a minute: the 50 tokens are 5 s of the token budget."""
    return [round(budget.reserve(tokens), 1) for tokens in (50, 1, 1, 1, 1, 1)]


def test_with_both_limits_a_token_backlog_never_bunches_requests(settings):
    shared = SharedBudget(settings.database_url, settings, "both", 60, 600)
    try:
        # One start for both limits: each request 1 s after the one before it and never inside
        # the big request's token slot, so no window holds more requests than 60 a minute allows.
        assert both_limits_sends(shared) == [0.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    finally:
        shared.close()
    assert both_limits_sends(LocalBudget(60, 600)) == [0.0, 5.0, 6.0, 7.0, 8.0, 9.0]


def test_a_budget_whose_row_vanished_is_made_again(settings, store):
    shared = SharedBudget(settings.database_url, settings, "gone", RPM, 0)
    try:
        store.execute(f'DELETE FROM "{settings.schema}".provider_budgets')
        assert not shared.held()
        assert shared.reserve(1) == pytest.approx(0, abs=0.02)
        shared.hold(1.0)
        assert shared.held()
    finally:
        shared.close()


def test_a_process_budget_paces_in_memory_and_holds_every_thread_after_a_retry_after():
    budget = LocalBudget(RPM, 0)
    assert [round(budget.reserve(1), 1) for _ in range(2)] == [0.0, 0.1]
    budget.hold(0.5)
    assert budget.held()
    # Held, then paced from the hold's end: no burst of the requests that waited.
    assert [round(budget.reserve(1), 1) for _ in range(2)] == [0.5, 0.6]


def test_a_run_draws_on_the_shared_budget_unless_its_scope_is_the_process(settings, store):
    database = DatabaseResource(url=settings.database_url, db_schema=settings.schema)
    with FakeEmbeddingServer() as server:
        for scope in ("process", "deployment"):
            resource = EmbeddingProviderResource(
                provider="openai_compatible",
                base_url=server.openai_url,
                model=f"m-{scope}",
                dimensions=32,
                requests_per_minute=RPM,
                budget_scope=scope,
            )
            with resource.open(database) as provider:
                provider.embed(["one text"])
    names = [
        row[0]
        for row in store.execute(
            store._sql("SELECT name FROM {b}", b=store.t("provider_budgets"))
        ).fetchall()
    ]
    assert names == [f"openai_compatible {server.openai_url} m-deployment"]
    with pytest.raises(SettingError, match="EMBED_ASSETS_BUDGET_SCOPE must be one of"):
        Settings(budget_scope="cluster")


# One process of the deployment: a provider drawing on the shared budget, one request per text,
# four in flight. It says when it is ready, and starts at the time it is then given (the wall
# clock: one machine), so that the three overlap however slowly each one started.
WORKER = """
import sys, time
from embed_assets.lib.budget import BudgetDatabase
from embed_assets.lib.providers import opened_provider
from embed_assets.lib.settings import Settings

settings = Settings.from_env()
budgets = BudgetDatabase(settings.database_url, settings)
with opened_provider(settings, budgets) as provider:
    print("ready", flush=True)
    time.sleep(max(0.0, float(sys.stdin.readline()) - time.time()))
    provider.embed([f"{sys.argv[1]} text {i}" for i in range(int(sys.argv[2]))])
"""


def test_three_processes_never_exceed_one_shared_budget_and_share_a_retry_after(settings):
    # The 10th request gets a 429 with Retry-After: every process must stop for HOLD seconds.
    with FakeEmbeddingServer(faults=[None] * 9 + ["429"], retry_after=HOLD) as server:
        env = os.environ | {
            "EMBED_ASSETS_PROVIDER": "openai_compatible",
            "EMBED_ASSETS_BASE_URL": server.openai_url,
            "EMBED_ASSETS_MODEL": "fake-embedder",
            "EMBED_ASSETS_DIMENSIONS": "32",
            "EMBED_ASSETS_BATCH_SIZE": "1",
            "EMBED_ASSETS_MAX_CONCURRENCY": "4",
            "EMBED_ASSETS_REQUESTS_PER_MINUTE": str(RPM),
        }
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, f"p{k}", str(PER_PROCESS)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(3)
        ]
        for worker in workers:
            assert worker.stdout.readline() == "ready\n", worker.communicate(timeout=60)[1]
        start = time.time() + 0.2
        for worker in workers:
            worker.stdin.write(f"{start}\n")
            worker.stdin.close()
        for worker in workers:
            err = worker.stderr.read()
            assert worker.wait(timeout=60) == 0, err[-2000:]
        requests = sorted(server.requests, key=lambda r: r.arrived)
    arrived = [r.arrived for r in requests]
    assert len(arrived) == 3 * PER_PROCESS + 1  # each text once, plus the one answered 429

    # The bound: every window [t, t + w) starting at an arrival holds at most RPM·w/60 + 1
    # requests (the documented burst: one), for every window length up to the whole run.
    span = arrived[-1] - arrived[0]
    for w in (1.0, 2.0, 3.0, span):
        most = max(sum(1 for b in arrived if a <= b < a + w) for a in arrived)
        assert most <= RPM * w / 60 + 1, (w, most)

    # The hold: after the 429 arrived, no process sent anything until Retry-After had passed
    # (slack: the 429's answer travels, and a request may have left just before the hold).
    limited = next(r.arrived for r in requests if r.status == 429)
    during = [t - limited for t in arrived if limited + 0.2 < t < limited + HOLD - 0.05]
    assert during == []
    # ... and it was a shared hold: every process sent requests before it and after it.
    for k in range(3):
        times = [r.arrived for r in requests if r.texts[0].startswith(f"p{k} ")]
        assert min(times) < limited < max(times), k
    # The budget binds: the run took about as long as the budget allows, never much less.
    assert span >= (len(arrived) - 2) * 60 / RPM + HOLD - 0.3
    assert span <= (len(arrived) - 1) * 60 / RPM + HOLD + 3.0
