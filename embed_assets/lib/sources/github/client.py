"""A client of GitHub's REST API for repository objects: a search over a creation-time window, or
the repositories a user has starred. READMEs are not fetched: that would be one more request per
repository (a hundred per search page), so rows carry readme=None.

Search answers at most 1,000 results per query, so a window whose `total_count` exceeds that is
halved, recursively, down to one second; a one-second window still over the cap is fetched as far
as GitHub allows and listed in the stats' `truncated_windows`. Items are deduplicated by full_name
(case-insensitive, like GitHub): they shift between pages when repositories change as we page.

Rate limits, after GitHub's best practices: a 403/429 with Retry-After waits that long; with
X-RateLimit-Remaining 0, until X-RateLimit-Reset; else (a secondary limit with no header) from 60 s,
doubling. A success that leaves Remaining at 0 pauses before the next request. A wait longer than
`max_wait` is a GitHubError naming the reset time. 5xx and connection errors are retried with
exponential backoff; attempts are bounded; every wait goes through the injectable `sleep`.
With an `etags` store, each GET sends If-None-Match and a 304 (which GitHub does not count against
the rate limit) reuses the stored body and the stored next-page URL: a 304 need not carry a Link
header. Stored bodies keep only the fields read here (`_slim`). `StoreETags` keeps them in the
project's Postgres (table `github_etags`), so that every run and process shares them.

The rows these fetches become, and the load into the source table:
embed_assets.lib.sources.github.load.

The token lives only in the Authorization header and is scrubbed from every message that quotes
GitHub; a pagination link to another host is refused, since following it would send the token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Protocol
from urllib.parse import quote

import httpx

from embed_assets.lib.errors import Failure
from embed_assets.lib.http import TRANSPORT_ERRORS, retry_after_seconds

log = logging.getLogger(__name__)

API_URL = "https://api.github.com"
SEARCH_CAP = 1000  # results reachable per search query
PER_PAGE = 100  # GitHub's maximum
SECONDARY_BACKOFF = 60.0  # GitHub: wait at least a minute when a secondary limit gives no header
_SECOND = timedelta(seconds=1)
_HINTS = {
    401: "check GITHUB_TOKEN",
    403: "check what the token may access",
    404: "check the user name",
}

# What the client reads of a repository object (see to_record) and of a search page.
REPOSITORY_FIELDS = (
    "full_name",
    "description",
    "language",
    "stargazers_count",
    "topics",
    "html_url",
    "created_at",
)

Body = dict | list
Stored = tuple[str, Body, str | None]  # etag, body, the next page's URL (None: the last page)


class GitHubError(Failure):
    """A request failed for good; the message says why and never holds the token."""


class ETags(Protocol):
    """Stored ETags, bodies and next-page URLs, keyed by the full request URL (query included)."""

    def get(self, url: str) -> Stored | None: ...

    def put(self, url: str, etag: str, body: Body, next_url: str | None) -> None: ...


class MemoryETags:
    """ETags kept in memory for the life of the object."""

    def __init__(self) -> None:
        self._entries: dict[str, Stored] = {}

    def get(self, url: str) -> Stored | None:
        return self._entries.get(url)

    def put(self, url: str, etag: str, body: Body, next_url: str | None) -> None:
        self._entries[url] = (etag, body, next_url)


class StoreETags:
    """ETags in the project's Postgres (`github_etags`), shared by every run and process. `store`
    is an open Store (its `etag_get`/`etag_put`); each put commits at once (autocommit), so a
    fetch that fails later keeps the pages it got, and their bodies, for the next attempt."""

    def __init__(self, store) -> None:
        self._store = store

    def get(self, url: str) -> Stored | None:
        return self._store.etag_get(url)

    def put(self, url: str, etag: str, body: Body, next_url: str | None) -> None:
        self._store.etag_put(url, etag, body, next_url)


@dataclass
class FetchStats:
    requests: int = 0  # HTTP attempts, 304s and failures included
    not_modified: int = 0  # 304s answered from the ETag store
    pages: int = 0
    bytes: int = 0
    retries: int = 0
    windows_split: int = 0
    truncated_windows: list[str] = field(default_factory=list)  # "FROM..TO: fetched of total"
    incomplete_results: int = 0  # pages where GitHub's search timed out and may miss items
    duplicates: int = 0
    rate_limit_waits: int = 0
    seconds_waited: float = 0.0


class GitHubClient:
    """GETs from GitHub with the rules of the module docstring; `stats` describe the last fetch."""

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str = API_URL,
        etags: ETags | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 6,
        max_wait: float = 900.0,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        timeout: float = 30.0,
    ) -> None:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "embed-assets",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._token = token
        self._etags = etags
        self._sleep, self._clock = sleep, clock
        self.max_attempts, self.max_wait = max_attempts, max_wait
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self._reset_at: float | None = None  # set when a success leaves no requests in the budget
        self.stats = FetchStats()
        self._http = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def search_repositories(self, query: str, start: datetime, end: datetime) -> list[dict]:
        """Repositories matching `query` created in [start, end): whole seconds, naive means UTC."""
        start, end = window_time(start), window_time(end)
        if end <= start:
            raise ValueError(f"empty window: {start.isoformat()} to {end.isoformat()}")
        self.stats = FetchStats()
        found: dict[str, dict] = {}
        self._search_window(query, start, end, found)
        return list(found.values())

    def starred(self, user: str | None = None) -> list[dict]:
        """Repositories starred by `user`, or by the token's owner when None."""
        self.stats = FetchStats()
        path = "/user/starred" if user is None else f"/users/{quote(user, safe='')}/starred"
        found: dict[str, dict] = {}
        for page in self._pages(path, {"per_page": PER_PAGE}):
            self._collect(page, found)
        return list(found.values())

    def _search_window(
        self, query: str, start: datetime, end: datetime, found: dict[str, dict]
    ) -> None:
        window = f"{_iso(start)}..{_iso(end - _SECOND)}"  # GitHub's range includes both ends
        q = f"{query} created:{window}".strip()
        pages = self._pages("/search/repositories", {"q": q, "per_page": PER_PAGE})
        first = next(pages)
        total = first["total_count"]
        if total > SEARCH_CAP and end - start > _SECOND:
            self.stats.windows_split += 1
            middle = start + timedelta(seconds=(end - start).total_seconds() // 2)
            self._search_window(query, start, middle, found)
            self._search_window(query, middle, end, found)
            return
        fetched = 0
        for page in chain([first], pages):
            self.stats.incomplete_results += bool(page.get("incomplete_results"))
            fetched += self._collect(page.get("items"), found)
        if total > SEARCH_CAP:
            self.stats.truncated_windows.append(f"{window}: {fetched} of {total}")
            log.warning(
                "GitHub search %r: %d results in one second, only %d reachable", q, total, fetched
            )

    def _collect(self, items: object, found: dict[str, dict]) -> int:
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise GitHubError("GitHub answered with something other than a list of repositories")
        for item in items:
            name = item.get("full_name")
            # An item without a name is kept under a unique key: the loader rejects it with a
            # reason.
            key = name.lower() if isinstance(name, str) else f"#{len(found)}"
            if key in found:
                self.stats.duplicates += 1
            found.setdefault(key, item)
        return len(items)

    def _pages(self, path: str, params: dict) -> Iterator[Body]:
        url: str | None = path
        query: dict | None = params
        while url:
            body, url = self._get(url, query)
            self.stats.pages += 1
            yield body
            query = None  # the next page's link carries the query
            if url and not url.startswith(str(self._http.base_url)):
                raise GitHubError(f"refusing a pagination link to another host: {url}")

    def _get(self, url: str, params: dict | None) -> tuple[Body, str | None]:
        """The body and the next page's URL (None on the last page)."""
        request = self._http.build_request("GET", url, params=params)
        key = str(request.url)
        stored = self._etags.get(key) if self._etags is not None else None
        if stored is not None:
            request.headers["If-None-Match"] = stored[0]
        bare_limits = 0
        for attempt in range(1, self.max_attempts + 1):
            self._pause_for_reset()
            self.stats.requests += 1
            limited = False
            try:
                response = self._http.send(request)
            except TRANSPORT_ERRORS as error:
                reason, delay = f"{type(error).__name__}: {error}", self._backoff(attempt)
            else:
                self.stats.bytes += response.num_bytes_downloaded
                status = response.status_code
                if status in (200, 304):
                    return self._accept(response, key, stored)
                reason = f"HTTP {status}"
                if status in (403, 429) and (limit := self._rate_limit(response, bare_limits)):
                    (delay, bare), limited = limit, True
                    bare_limits += bare
                    reason += " (rate limited)"
                elif status >= 500:
                    delay = self._backoff(attempt)
                else:
                    raise self._error(request, response)
            if attempt == self.max_attempts:
                break
            log.warning(
                "GitHub GET %s: %s on attempt %d of %d; waiting %.1f s",
                request.url.path,
                self._scrub(reason),
                attempt,
                self.max_attempts,
                delay,
            )
            self.stats.retries += 1
            self._wait(delay, limited)
        raise GitHubError(
            self._scrub(
                f"GitHub GET {request.url.path} failed {self.max_attempts} attempts; last: {reason}"
            )
        )

    def _accept(
        self, response: httpx.Response, key: str, stored: Stored | None
    ) -> tuple[Body, str | None]:
        headers = response.headers
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            self._reset_at = float(headers["x-ratelimit-reset"])
        if response.status_code == 304:
            if stored is None:  # a 304 to a request that sent no If-None-Match
                raise GitHubError(
                    f"GitHub answered {response.url.path} with 304 to an unconditional request"
                )
            # A 304 need not repeat the Link header: the next page is the one stored with the body.
            self.stats.not_modified += 1
            return stored[1], stored[2]
        try:
            body = _slim(response.json())
        except ValueError:
            raise GitHubError(f"GitHub answered {response.url.path} with invalid JSON") from None
        next_url = response.links.get("next", {}).get("url")
        if self._etags is not None and headers.get("etag"):
            self._etags.put(key, headers["etag"], body, next_url)
        return body, next_url

    def _rate_limit(self, response: httpx.Response, bare_limits: int) -> tuple[float, bool] | None:
        """(seconds to wait, whether it is a header-less secondary limit), None if not a limit."""
        headers = response.headers
        retry_after = retry_after_seconds(headers.get("retry-after"))
        if retry_after is not None:
            if retry_after > self.max_wait:
                raise GitHubError(
                    f"GitHub asks to retry after {retry_after:.0f} s, more than "
                    f"max_wait ({self.max_wait:.0f} s)"
                )
            return retry_after, False
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            return self._until(float(headers["x-ratelimit-reset"])), False
        if response.status_code == 429 or "secondary rate limit" in _message(response).lower():
            return min(SECONDARY_BACKOFF * 2**bare_limits, self.max_wait), True
        return None

    def _until(self, reset: float) -> float:
        # One second of margin: the reset is rounded to whole seconds and clocks drift.
        wait = max(0.0, reset - self._clock() + 1)
        if wait > self.max_wait:
            when = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise GitHubError(
                f"GitHub's primary rate limit is exhausted until {when} ({wait:.0f} s "
                f"away, more than max_wait {self.max_wait:.0f} s)"
            )
        return wait

    def _pause_for_reset(self) -> None:
        if self._reset_at is not None:
            wait, self._reset_at = self._until(self._reset_at), None
            if wait:
                log.info("GitHub rate limit budget spent; pausing %.0f s until it resets", wait)
                self._wait(wait, limited=True)

    def _wait(self, seconds: float, limited: bool) -> None:
        self.stats.rate_limit_waits += limited
        self.stats.seconds_waited += seconds
        self._sleep(seconds)

    def _backoff(self, attempt: int) -> float:
        # No jitter: one sequential client per run has no herd to spread.
        return min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))

    def _error(self, request: httpx.Request, response: httpx.Response) -> GitHubError:
        status = response.status_code
        hint = f" ({_HINTS[status]})" if status in _HINTS else ""
        return GitHubError(
            self._scrub(
                f"GitHub answered HTTP {status} to GET {request.url.path}: "
                f"{_message(response)}{hint}"
            )
        )

    def _scrub(self, text: str) -> str:
        """`text` without the token, cut to a readable length (after: a cut token would stay)."""
        if self._token:
            text = text.replace(self._token, "[token]")
        return " ".join(text.split())[:400]


def _slim(body: object) -> object:
    """`body` with only the fields read here: a search page of real GitHub objects is ~100 fields
    per repository, ~500 KB, and the ETag store keeps every page."""

    def repository(item: object) -> object:
        return {k: item.get(k) for k in REPOSITORY_FIELDS} if isinstance(item, dict) else item

    if isinstance(body, list):
        return [repository(item) for item in body]
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return {
            **{k: body[k] for k in ("total_count", "incomplete_results") if k in body},
            "items": [repository(item) for item in body["items"]],
        }
    return body


def _message(response: httpx.Response) -> str:
    """GitHub's `message` field, else the start of the body."""
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def window_time(value: datetime) -> datetime:
    """A search window's bound in UTC (a naive time is UTC); whole seconds only."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value.microsecond:
        raise ValueError(f"{value.isoformat()}: search windows are in whole seconds")
    return value


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
