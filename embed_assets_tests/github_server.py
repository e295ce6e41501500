"""A fake GitHub REST API for tests: a real HTTP server in a background thread on 127.0.0.1.

Endpoints, in GitHub's response shapes:
  GET /search/repositories  `q` holds `created:FROM..TO` (ISO-8601, both ends inclusive, as on
      GitHub) and words that must each appear in full_name or description. Results are ordered by
      stars (GitHub's "best match" also moves as repositories change), with `total_count` (all
      matches), `incomplete_results` and `items`. Only the first 1,000 are reachable: a page past
      them is a 422, as on GitHub.
  GET /users/{user}/starred, and GET /user/starred for the token's owner (`owner`).
Lists are paged by `page` and `per_page` (default 30, at most 100) with Link headers (next and last,
then prev and first). Every 200 has an ETag; a matching If-None-Match gets a 304 with no body and
no Link header (GitHub need not send one), so clients must remember each page's next link.
Rate-limit headers report `rate_remaining`, spent by each 200 but not by a 304 (as on GitHub), and
`rate_reset`.

Faults, used in order by the next requests (None: answer normally), before the token is checked:
  "primary"         403, X-RateLimit-Remaining 0 and X-RateLimit-Reset `rate_reset`
  "secondary"       403 with Retry-After `retry_after`
  "secondary-bare"  403 whose message names the secondary rate limit, with no header
  "429"             429 with no header
  "500", "502"      server errors
With `token` set, requests must carry it: 401 otherwise, echoing the credential received (GitHub
does not, some proxies do) to test that clients scrub it.

Everything received is recorded in `requests` (path, query, headers, status).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

SEARCH_CAP = 1000
_DOCS = "https://docs.github.com/rest"
_SECONDARY = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
_WORDS = ["vector", "search", "graph", "fast", "tiny", "async", "parser", "cli", "web", "data"]
_LANGUAGES = ["Python", "Rust", "Go", "TypeScript", None]

Answer = tuple[int, dict[str, str], object]  # status, headers, JSON body (None: no body)


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


def repository(
    full_name: str,
    created_at: datetime | str | None,
    *,
    stars: int = 0,
    description: str | None = None,
    language: str | None = None,
    topics: Iterable[str] = (),
) -> dict:
    """A repository object as GitHub's API returns it: the fields the client reads and a few
    more."""
    owner, _, name = full_name.partition("/")
    if isinstance(created_at, datetime):
        created_at = created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": zlib.crc32(full_name.encode()),
        "name": name,
        "full_name": full_name,
        "owner": {"login": owner},
        "private": False,
        "fork": False,
        "html_url": f"https://github.com/{full_name}",
        "description": description,
        "created_at": created_at,
        "updated_at": created_at,
        "stargazers_count": stars,
        "language": language,
        "topics": list(topics),
        "default_branch": "main",
    }


def make_repositories(
    count: int, start: datetime, end: datetime, *, seed: int = 0, prefix: str = "repo"
) -> list[dict]:
    """`count` repositories created at whole seconds drawn uniformly from [start, end)."""
    rng = random.Random(seed)
    span = int((end - start).total_seconds())
    return [
        repository(
            f"owner{i % 37}/{prefix}-{i}",
            start + timedelta(seconds=rng.randrange(span)),
            stars=rng.randrange(50_000),
            language=rng.choice(_LANGUAGES),
            description=f"A {' '.join(rng.sample(_WORDS, 3))} library",
            topics=rng.sample(_WORDS, 2),
        )
        for i in range(count)
    ]


class FakeGitHub:
    def __init__(
        self,
        repositories: Iterable[dict] | None = None,
        *,
        stars: dict[str, list[dict]] | None = None,
        owner: str = "octocat",
        token: str | None = None,
        faults: Iterable[str | None] = (),
        retry_after: int = 5,
        rate_remaining: int = 5000,
        rate_reset: int = 2_000_000_000,
    ) -> None:
        if repositories is None:
            repositories = make_repositories(
                600, datetime(2015, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
            )
        self.repositories = list(repositories)
        self.stars = dict(stars or {})
        self.owner = owner
        self.token = token
        self.faults = deque(faults)
        self.retry_after = retry_after
        self.rate_remaining = rate_remaining
        self.rate_reset = rate_reset
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_port}"

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def _respond(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict, bytes]:
        record = Received(path, query, headers)
        with self._lock:
            self.requests.append(record)
            fault = self.faults.popleft() if self.faults else None
            given = headers.get("authorization", "")
            if fault:
                status, extra, body = _fault(fault, self)
            elif self.token is not None and given != f"Bearer {self.token}":
                status, extra, body = (
                    401,
                    {},
                    {"message": f"Bad credentials: {given}", "documentation_url": _DOCS},
                )
            else:
                status, extra, body = self._route(path, query)
            data = json.dumps(body).encode()
            if status == 200:
                extra["ETag"] = f'W/"{hashlib.sha1(data).hexdigest()}"'
                if headers.get("if-none-match") == extra["ETag"]:
                    status, data = 304, b""
                    extra.pop("Link", None)  # GitHub need not repeat it on a 304
                else:
                    self.rate_remaining = max(0, self.rate_remaining - 1)
                extra.update(
                    {
                        "X-RateLimit-Limit": "5000",
                        "X-RateLimit-Resource": "core",
                        "X-RateLimit-Remaining": str(self.rate_remaining),
                        "X-RateLimit-Reset": str(self.rate_reset),
                    }
                )
            record.status = status
        return status, extra, data

    def _route(self, path: str, query: dict[str, str]) -> Answer:
        if path == "/search/repositories":
            return self._search(path, query)
        if path == "/user/starred":
            return self._page(path, query, self.stars.get(self.owner, []))
        user = re.fullmatch(r"/users/([^/]+)/starred", path)
        if user and user[1] in self.stars:
            return self._page(path, query, self.stars[user[1]])
        return 404, {}, {"message": "Not Found", "documentation_url": _DOCS}

    def _search(self, path: str, query: dict[str, str]) -> Answer:
        try:
            matches = self._matching(query.get("q", ""))
            page, per_page = _paging(query)
        except ValueError as error:
            return 422, {}, {"message": "Validation Failed", "errors": [{"message": str(error)}]}
        if (page - 1) * per_page >= SEARCH_CAP:
            return (
                422,
                {},
                {
                    "message": "Only the first 1000 search results are available",
                    "documentation_url": _DOCS,
                },
            )
        status, links, items = self._page(path, query, matches[:SEARCH_CAP])
        return (
            status,
            links,
            {"total_count": len(matches), "incomplete_results": False, "items": items},
        )

    def _matching(self, q: str) -> list[dict]:
        low = high = None
        words = []
        for token in q.split():
            if token.startswith("created:"):
                low_text, dots, high_text = token.removeprefix("created:").partition("..")
                if not dots:
                    raise ValueError(f"unsupported created qualifier: {token}")
                low, high = _time(low_text), _time(high_text)
            else:
                words.append(token.lower())

        def matches(repo: dict) -> bool:
            created = repo.get("created_at")
            if low is not None and (not created or not low <= _time(created) <= high):
                return False
            text = f"{repo.get('full_name')} {repo.get('description') or ''}".lower()
            return all(word in text for word in words)

        found = [repo for repo in self.repositories if matches(repo)]
        return sorted(
            found, key=lambda repo: (-repo.get("stargazers_count", 0), str(repo.get("full_name")))
        )

    def _page(self, path: str, query: dict[str, str], items: list) -> Answer:
        page, per_page = _paging(query)
        last = max(1, math.ceil(len(items) / per_page))
        rels = [("next", page + 1), ("last", last)] if page < last else []
        rels += [("prev", page - 1), ("first", 1)] if page > 1 else []
        links = ", ".join(
            f'<{self.url}{path}?{urlencode({**query, "page": n})}>; rel="{rel}"' for rel, n in rels
        )
        return 200, {"Link": links} if links else {}, items[(page - 1) * per_page : page * per_page]


def _fault(kind: str, server: FakeGitHub) -> Answer:
    if kind == "primary":
        return (
            403,
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(server.rate_reset)},
            {"message": "API rate limit exceeded for user ID 1.", "documentation_url": _DOCS},
        )
    if kind == "secondary":
        return 403, {"Retry-After": str(server.retry_after)}, {"message": _SECONDARY}
    if kind == "secondary-bare":
        return 403, {}, {"message": _SECONDARY}
    if kind in ("429", "500", "502"):
        return int(kind), {}, {"message": "Too Many Requests" if kind == "429" else "Server Error"}
    raise ValueError(f"unknown fault {kind!r}")


def _paging(query: dict[str, str]) -> tuple[int, int]:
    page, per_page = int(query.get("page", 1)), min(100, int(query.get("per_page", 30)))
    if page < 1 or per_page < 1:
        raise ValueError("page and per_page must be positive")
    return page, per_page


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _handler(server: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so that clients pool their connections
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = server._respond(parts.path, query, headers)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            if status != 304:  # a 304 has no body, so no length
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # tests read `requests`, not stderr

    return Handler
