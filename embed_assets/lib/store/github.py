"""The GitHub source's conditional requests: ETags with the body and next-page URL they stand for,
keyed by the full request URL, shared by every run and process
(embed_assets.lib.sources.github.client)."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from embed_assets.lib.store.base import StoreBase


class GitHubQueries(StoreBase):
    def etag_get(self, url: str) -> tuple[str, dict | list, str | None] | None:
        """(etag, body, next_url) stored for `url`, None when there is none."""
        row = self.execute(
            self._sql(
                "SELECT etag, body, next_url FROM {etags} WHERE url = %s",
                etags=self.t("github_etags"),
            ),
            (url,),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def etag_put(self, url: str, etag: str, body: dict | list, next_url: str | None) -> None:
        self.execute(
            self._sql(
                "INSERT INTO {etags} (url, etag, body, next_url) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, body = excluded.body, "
                "next_url = excluded.next_url, fetched_at = now()",
                etags=self.t("github_etags"),
            ),
            (url, etag, Jsonb(body), next_url),
        )

    def etag_prune(self, days: int) -> int:
        """Forget pages not fetched for `days`: daily windows' URLs are never asked again."""
        return self.execute(
            self._sql(
                "DELETE FROM {etags} WHERE fetched_at < now() - make_interval(days => %s)",
                etags=self.t("github_etags"),
            ),
            (days,),
        ).rowcount

    def etag_count(self) -> int:
        return self.execute(
            self._sql("SELECT count(*) FROM {etags}", etags=self.t("github_etags"))
        ).fetchone()[0]
