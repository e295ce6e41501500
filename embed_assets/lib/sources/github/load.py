"""GitHub as a source of the source table: GitHub's repository objects
(embed_assets.lib.sources.github.client)
become loader records checked by `parse_record`, so a bad item is a Rejected with a reason and the
others are kept; `load_github` is the whole source for one window (fetch a search, or the starred
list filtered to the window; validate; upsert through the store), which the `repositories` asset
and `embed-assets load --github` both call."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from embed_assets.lib.settings import CREATED_QUALIFIER
from embed_assets.lib.sources.github.client import GitHubClient, window_time
from embed_assets.lib.sources.loader import Rejected, SourceRow, parse_record, upsert_rows

ME = "@me"  # the starred repositories of the token's owner
ETAG_DAYS = 30  # stored pages not fetched for this long are forgotten
Rows = tuple[list[SourceRow], list[Rejected], dict]  # rows, rejected, the fetch's stats


def to_record(item: dict) -> dict:
    """The loader's record for one repository object of GitHub's API."""
    return {
        "full_name": item.get("full_name"),
        "description": item.get("description"),
        "language": item.get("language"),
        "stars": item.get("stargazers_count"),
        "topics": item.get("topics"),
        "url": item.get("html_url"),
        "created_at": item.get("created_at"),
    }


# The columns GitHub's objects give (no README): a GitHub load writes them as given, an empty one
# included (GitHub is their truth), and keeps a README loaded from a file.
GIVEN = tuple(to_record({}))


def parse_items(items: list[dict]) -> tuple[list[SourceRow], list[Rejected]]:
    """Validate items; a Rejected's row is the item's 1-based position in the fetched result."""
    rows: list[SourceRow] = []
    rejected: list[Rejected] = []
    for number, item in enumerate(items, 1):
        result = parse_record(to_record(item), number, time_column="created_at")
        (rows if isinstance(result, SourceRow) else rejected).append(result)
    return rows, rejected


def search_rows(client: GitHubClient, query: str, start: datetime, end: datetime) -> Rows:
    """Rows for the repositories matching `query` created in [start, end), with the fetch's
    stats."""
    rows, rejected = parse_items(client.search_repositories(query, start, end))
    return rows, rejected, asdict(client.stats)


def starred_rows(client: GitHubClient, user: str | None = None) -> Rows:
    """Rows for the repositories `user` (None: the token's owner) starred, with the fetch's
    stats."""
    rows, rejected = parse_items(client.starred(user))
    return rows, rejected, asdict(client.stats)


def window_qualifier_in(query: str) -> bool:
    """Whether `query` has its own `created:` qualifier, which would fight the window's."""
    return bool(CREATED_QUALIFIER.search(query))


@dataclass
class GitHubLoad:
    """What `load_github` did: the upsert's counts, the rejected items and the fetch's stats."""

    counts: dict  # inserted, updated, unchanged, deleted, changed (per column)
    rejected: list[Rejected]
    stats: dict
    fetched: int  # items GitHub returned (after deduplication)
    outside_window: int = 0  # starred repositories created outside the window: not loaded

    def summary(self) -> dict:
        """The counts of a file load (inserted, updated, unchanged, rejected) and the fetch's
        stats; `truncated_windows` lists "FROM..TO: fetched of total" per window over the cap."""
        stats = self.stats
        return {
            **self.counts,
            "rejected": len(self.rejected),
            "requests": stats["requests"],
            "not_modified": stats["not_modified"],
            "pages": stats["pages"],
            "windows_split": stats["windows_split"],
            "truncated_windows": list(stats["truncated_windows"]),
            "incomplete_results": stats["incomplete_results"],
            "rate_limit_waits": stats["rate_limit_waits"],
            "seconds_waited": round(stats["seconds_waited"], 1),
            "outside_window": self.outside_window,
        }

    def metadata(self) -> dict:
        """`summary` for an asset's metadata: keys prefixed `github_` (the asset's own counts
        share names), the truncated windows counted, and examples of them and of rejects."""
        summary = self.summary()
        truncated = summary.pop("truncated_windows")
        return {f"github_{key}": value for key, value in summary.items()} | {
            "github_truncated_windows": len(truncated),
            "github_truncated_window_examples": truncated[:5],
            "github_rejected_examples": [
                f"{r.full_name or f'item {r.row}'}: {r.reason}" for r in self.rejected[:5]
            ],
        }

    def describe(self) -> str:
        """One line for a log or the CLI's stderr."""
        stats = self.stats
        line = (
            f"fetched {self.fetched:,} repositories from GitHub in {stats['requests']} "
            f"requests ({stats['not_modified']} not modified, {stats['pages']} pages, "
            f"{stats['windows_split']} windows split, {stats['rate_limit_waits']} rate-limit "
            f"waits)"
        )
        if self.outside_window:
            line += f"; {self.outside_window:,} created outside the window left out"
        if stats["truncated_windows"]:
            line += "; over the 1,000-result cap within one second, not all fetched: " + ", ".join(
                stats["truncated_windows"][:5]
            )
        return line


def load_github(
    store,
    client: GitHubClient,
    start: datetime,
    end: datetime,
    *,
    query: str | None = None,
    starred: str | None = None,
) -> GitHubLoad:
    """Fetch the repositories created in [start, end) (a search for `query`, or those `starred`
    by a user, `@me` for the token's owner, kept when created in the window) and upsert them into
    the source table of `store`. Exactly one of `query` and `starred`."""
    if (query is None) == (starred is None):
        raise ValueError("give exactly one of query and starred")
    start, end = window_time(start), window_time(end)
    outside = 0
    if query is not None:
        if window_qualifier_in(query):
            raise ValueError(
                f"the query {query!r} has its own created: qualifier; the window is added to it"
            )
        rows, rejected, stats = search_rows(client, query, start, end)
    else:
        rows, rejected, stats = starred_rows(client, None if starred == ME else starred)
        kept = [row for row in rows if start <= row.created_at < end]
        rows, outside = kept, len(rows) - len(kept)
    fetched = len(rows) + len(rejected) + outside
    store.etag_prune(ETAG_DAYS)
    counts = upsert_rows(store, rows, given=GIVEN, replace=True)
    return GitHubLoad(counts, rejected, stats, fetched, outside)
