"""The provider budget shared by every process using the database: one row per budget, updated by
one statement per request, so that runs on other machines draw on the same requests and tokens per
minute (embed_assets.lib.budget explains the rule and what it guarantees)."""

from __future__ import annotations

from embed_assets.lib.store.base import StoreBase

# Times are epoch seconds of the database's clock, the one clock every process shares.
_BUDGET_DDL = """
CREATE TABLE IF NOT EXISTS {budgets} (
    name text PRIMARY KEY,
    reserved_at double precision NOT NULL DEFAULT 0,
    requests_next double precision NOT NULL DEFAULT 0,
    tokens_next double precision NOT NULL DEFAULT 0,
    not_before double precision NOT NULL DEFAULT 0,
    requests_per_minute integer NOT NULL DEFAULT 0,
    tokens_per_minute integer NOT NULL DEFAULT 0
)
"""

# `reserved_at` never goes back, so reservations are ordered as the row lock serialises them even
# if clocks read before the lock would not be. Each reservation owns one slot that starts at the
# later of now, `not_before`, the previous request slot's end and the previous tokens' slot's end,
# and lasts 60/rpm seconds for the request and 60·tokens/tpm for its tokens: one start for both, so
# a token backlog cannot bunch requests (or the reverse). A limit of 0 is no limit. The sub-select
# in SET is evaluated after the row lock. Returns how long to wait before sending: start - now.
# The row is made when missing (a budget table emptied by hand), never an error.
_RESERVE = """
INSERT INTO {budgets} AS b (name) VALUES (%(name)s)
ON CONFLICT (name) DO UPDATE SET
    (reserved_at, requests_next, tokens_next, requests_per_minute, tokens_per_minute) = (
    SELECT x.now,
           CASE WHEN %(rpm)s > 0 THEN x.start + 60.0 / %(rpm)s ELSE b.requests_next END,
           CASE WHEN %(tpm)s > 0 THEN x.start + 60.0 * %(tokens)s / %(tpm)s ELSE b.tokens_next END,
           %(rpm)s, %(tpm)s
    FROM (SELECT n.now,
                 greatest(n.now, b.not_before,
                          CASE WHEN %(rpm)s > 0 THEN b.requests_next ELSE 0 END,
                          CASE WHEN %(tpm)s > 0 THEN b.tokens_next ELSE 0 END) AS start
          FROM (SELECT greatest(b.reserved_at, extract(epoch FROM clock_timestamp())) AS now) n) x)
RETURNING greatest(
    not_before,
    CASE WHEN %(rpm)s > 0 THEN requests_next - 60.0 / %(rpm)s END,
    CASE WHEN %(tpm)s > 0 THEN tokens_next - 60.0 * %(tokens)s / %(tpm)s END,
    reserved_at
) - reserved_at
"""


class BudgetQueries(StoreBase):
    def ensure_budget(self, name: str) -> None:
        """The budgets table and this budget's row (DDL of its own, so that the schema's version
        need not change; CREATE ... IF NOT EXISTS is a catalog lookup when the table exists). The
        connection becomes the budget's: its commits do not wait for the disk, since losing the
        last reservations in an OS crash costs nothing (they are in the past)."""
        budgets = self.t("provider_budgets")
        with self.transaction():
            self.execute("SELECT pg_advisory_xact_lock(hashtext('embed_assets.ensure_budget'))")
            self.execute(self._sql(_BUDGET_DDL, budgets=budgets))
            self.execute(
                self._sql(
                    "INSERT INTO {budgets} (name) VALUES (%s) ON CONFLICT DO NOTHING",
                    budgets=budgets,
                ),
                (name,),
            )
        self.execute("SET synchronous_commit = off")
        # A budget row locked for long (a stuck session) fails the request with an error instead
        # of stalling every worker of every process without one.
        self.execute("SET statement_timeout = '10s'")
        self.execute("SET lock_timeout = '5s'")

    def reserve_budget(
        self, name: str, requests_per_minute: int, tokens_per_minute: int, tokens: int
    ) -> float:
        """Take the next slot of the budget for one request of `tokens`; returns how many seconds
        to wait before sending it."""
        return self.execute(
            self._sql(_RESERVE, budgets=self.t("provider_budgets")),
            {"name": name, "rpm": requests_per_minute, "tpm": tokens_per_minute, "tokens": tokens},
        ).fetchone()[0]

    def hold_budget(self, name: str, seconds: float) -> None:
        """No request of this budget starts in the next `seconds` (a server's Retry-After)."""
        self.execute(
            self._sql(
                "INSERT INTO {budgets} AS b (name, not_before) VALUES "
                "(%(name)s, extract(epoch FROM clock_timestamp()) + %(seconds)s) "
                "ON CONFLICT (name) DO UPDATE SET not_before = greatest(b.not_before, "
                "greatest(b.reserved_at, extract(epoch FROM clock_timestamp())) + %(seconds)s)",
                budgets=self.t("provider_budgets"),
            ),
            {"name": name, "seconds": seconds},
        )

    def budget_held(self, name: str) -> bool:
        row = self.execute(
            self._sql(
                "SELECT not_before > greatest(reserved_at, extract(epoch FROM clock_timestamp())) "
                "FROM {budgets} WHERE name = %s",
                budgets=self.t("provider_budgets"),
            ),
            (name,),
        ).fetchone()
        return bool(row and row[0])
