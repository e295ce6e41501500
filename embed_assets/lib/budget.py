"""One provider budget for the whole deployment: every process and run that uses the database
draws its requests and tokens per minute from one row of `provider_budgets`
(embed_assets.lib.store.budget), and a server's Retry-After seen by one of them holds all of them.

The rule (one UPDATE per request, serialised by the row's lock, on the database's clock): a
request owns the next slot of the budget, which starts at the latest of now, the held-until time
and the ends of the previous request's slot and of the previous tokens' slot, and lasts 60/rpm
seconds for the request and 60·tokens/tpm for its estimated tokens (one start for both, so that
neither limit bunches the other's requests); it is sent when its slot starts (when it had to
wait, the hold is looked at again first: a Retry-After that came meanwhile voids its slot, and it
takes one after the hold). Slots never overlap, so in any window of W seconds at most rpm·W/60 + 1
requests and tpm·W/60 + (the largest
request's tokens) tokens start: the burst is one request. A wait is measured from when the answer
arrived, so a request can only start later than its slot, never sooner. The cost is one round
trip to the database per request, two when it waits (no commit flush: the budget's connection does
not wait for the disk).

A process that shares no database with others paces in memory instead (`LocalBudget`): the search
command, EMBED_ASSETS_BUDGET_SCOPE=process, or a provider built outside a run.
"""

from __future__ import annotations

from embed_assets.lib.settings import Settings
from embed_assets.lib.store import connect_store


class SharedBudget:
    """A `Budget` (embed_assets.lib.providers.client) kept in the project's database; one
    connection of its own, thread-safe (psycopg serialises its use). `close()` closes it."""

    def __init__(
        self,
        url: str,
        settings: Settings,
        name: str,
        requests_per_minute: int,
        tokens_per_minute: int,
    ) -> None:
        self.name = name
        self._limits = (requests_per_minute, tokens_per_minute)
        self._store = connect_store(url, settings)
        try:
            self._store.ensure_budget(name)
        except BaseException:
            self._store.conn.close()
            raise

    def reserve(self, tokens: int) -> float:
        return self._store.reserve_budget(self.name, *self._limits, tokens)

    def hold(self, seconds: float) -> None:
        self._store.hold_budget(self.name, seconds)

    def held(self) -> bool:
        return self._store.budget_held(self.name)

    def close(self) -> None:
        self._store.conn.close()


class BudgetDatabase:
    """Where the shared budgets of a run live: the project's database and schema. HTTP providers
    open their budget here (`open`), named by EMBED_ASSETS_BUDGET_NAME or by provider, server and
    model."""

    def __init__(self, url: str, settings: Settings) -> None:
        self._url = url
        self._settings = settings

    def open(self, name: str, requests_per_minute: int, tokens_per_minute: int) -> SharedBudget:
        return SharedBudget(self._url, self._settings, name, requests_per_minute, tokens_per_minute)
