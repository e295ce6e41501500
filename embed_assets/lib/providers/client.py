"""Calling an embedding server resiliently: one pooled httpx client, retries with exponential
backoff and full jitter, Retry-After, per-minute rate limits (a `Budget`, in this process or shared
by the deployment) and a circuit breaker.

Which failures are retried:
- HTTP 408, 429, 500, 502, 503, 504; connection errors and timeouts; a response that cannot be used
  (malformed JSON, wrong vector count...: the parser raises `BadResponse`). A `Retry-After` header
  (seconds or an HTTP date) sets the wait, capped by EMBED_ASSETS_RETRY_AFTER_MAX, and holds every
  request of the budget for as long (every thread, and with a shared budget every process); else
  the wait is uniform in
  [0, min(EMBED_ASSETS_BACKOFF_MAX, EMBED_ASSETS_BACKOFF_BASE * 2**(attempt - 1))].
- 400, 413, 422 are raised as `Rejected`: the request was invalid, so the caller splits the batch.
- Anything else (401, 403, 404...) is a `ProviderError` at once: retrying cannot help.

The circuit breaker counts consecutive failed attempts across all requests in flight; a success
resets the count. Server faults count (5xx, timeouts, connection errors, bad responses); 429 does
not (the server is up and says when to come back), nor do rejected inputs. At
EMBED_ASSETS_BREAKER_THRESHOLD it opens for the rest of the client's life (one run): every request,
in flight or later, raises the same `ProviderError`, so a run fails fast and says why.

The API key lives only in the client's Authorization header (httpx redacts it from reprs) and is
scrubbed from every error message that quotes the server.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import httpx

from embed_assets.lib.http import TRANSPORT_ERRORS, retry_after_seconds
from embed_assets.lib.providers.base import ProviderError, ProviderMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REJECT_STATUSES = frozenset({400, 413, 422})
_HINTS = {
    401: "check the API key",
    403: "check the API key and what it may access",
    404: "check EMBED_ASSETS_BASE_URL and EMBED_ASSETS_MODEL",
}


class BadResponse(Exception):
    """A 2xx response we cannot use: a server fault, retried like a 5xx."""


class Rejected(Exception):
    """The server refused the request as invalid (400, 413, 422)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class _Retry(Exception):
    """An attempt failed in a way worth retrying; `fault` says whether it counts for the breaker."""

    def __init__(self, reason: str, retry_after: float | None = None, fault: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.retry_after, self.fault = reason, retry_after, fault


class Cancelled(Exception):
    """Another request of the same call failed: this one stops waiting and gives up."""


class Budget(Protocol):
    """What a client draws on before each request: in this process (`LocalBudget`) or shared by
    every process using the database (`embed_assets.lib.budget.SharedBudget`)."""

    def reserve(self, tokens: int) -> float:
        """Take one request of `tokens`; returns how many seconds to wait before sending it."""

    def hold(self, seconds: float) -> None:
        """No request starts in the next `seconds` (a server's Retry-After)."""

    def held(self) -> bool:
        """Whether a hold is on now."""

    def close(self) -> None: ...


class LocalBudget:
    """EMBED_ASSETS_REQUESTS_PER_MINUTE and _TOKENS_PER_MINUTE paced in this process's memory (no
    I/O); a Retry-After holds every thread of the process. Thread-safe.

    The rule of the shared budget (embed_assets.lib.budget), on the monotonic clock: a request owns
    one slot that starts when both the previous request's slot and the previous tokens' slot have
    ended (and no hold is on), so neither limit can bunch the other's requests together."""

    def __init__(self, requests_per_minute: int, tokens_per_minute: int) -> None:
        self._requests_per_minute = requests_per_minute
        self._tokens_per_minute = tokens_per_minute
        now = time.monotonic()
        self._requests_next = self._tokens_next = now
        self._not_before = 0.0
        self._lock = threading.Lock()

    def reserve(self, tokens: int) -> float:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._not_before)
            if self._requests_per_minute:
                start = max(start, self._requests_next)
            if self._tokens_per_minute:
                start = max(start, self._tokens_next)
            if self._requests_per_minute:
                self._requests_next = start + 60.0 / self._requests_per_minute
            if self._tokens_per_minute:
                self._tokens_next = start + 60.0 * tokens / self._tokens_per_minute
        return start - now

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)

    def held(self) -> bool:
        return self._not_before > time.monotonic()

    def close(self) -> None:
        pass


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; see the module docstring. Thread-safe."""

    def __init__(self, threshold: int, label: str, metrics: ProviderMetrics) -> None:
        self.threshold = threshold
        self._label = label
        self._metrics = metrics
        self._failures = 0
        self._open_message: str | None = None
        self._lock = threading.Lock()

    def check(self) -> None:
        if self._open_message:
            raise ProviderError(self._open_message)

    def succeeded(self) -> None:
        with self._lock:
            self._failures = 0

    def failed(self, reason: str) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold and not self._open_message:
                self._open_message = (
                    f"{self._label} failed {self._failures} times in a row (last: {reason}); "
                    "circuit open, not calling it again for this run"
                )
                self._metrics.breaker = "open"
        self.check()


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_base: float
    backoff_max: float
    retry_after_max: float

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        return rng.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))


class ResilientClient:
    """POSTs JSON to one server with the rules of the module docstring; closed by `close()`."""

    def __init__(
        self,
        label: str,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        connect_timeout: float,
        max_concurrency: int,
        policy: RetryPolicy,
        breaker_threshold: int,
        budget: Budget,
        metrics: ProviderMetrics,
    ) -> None:
        self.label = label
        self._api_key = api_key
        self._policy = policy
        self._metrics = metrics
        self._rng = random.Random()
        self.breaker = CircuitBreaker(breaker_threshold, label, metrics)
        self.budget = budget
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
        )

    def close(self) -> None:
        self._http.close()
        self.budget.close()

    def scrub(self, text: str) -> str:
        """`text` without the API key, cut to a readable length (after: a cut key would stay)."""
        if self._api_key:
            text = text.replace(self._api_key, "[api key]")
        return " ".join(text.split())[:300]

    def post(
        self,
        path: str,
        body: dict,
        parse: Callable[[httpx.Response], tuple[T, int | None]],
        *,
        texts: int,
        tokens: int,
        cancel: threading.Event,
    ) -> T:
        """POST `body` and return what `parse` makes of the response. `parse` returns the result and
        the server's token count (None: `tokens`, our estimate, is recorded)."""
        for attempt in range(1, self._policy.max_attempts + 1):
            self.breaker.check()
            self._pace(tokens, cancel)
            self._metrics.add(provider_calls=1, retries=int(attempt > 1))
            try:
                return self._attempt(path, body, parse, texts=texts, tokens=tokens)
            except _Retry as retry:
                last = retry
            if last.fault:
                self.breaker.failed(last.reason)
            delay = self._policy.delay(attempt, last.retry_after, self._rng)
            if last.retry_after is not None:
                # The server's word holds every request of the budget, this call's last try too.
                self.budget.hold(delay)
            if attempt < self._policy.max_attempts:
                log.warning(
                    "%s: %s on attempt %d of %d; retrying in %.2f s",
                    self.label,
                    last.reason,
                    attempt,
                    self._policy.max_attempts,
                    delay,
                )
                if cancel.wait(delay):
                    raise Cancelled()
        raise ProviderError(
            f"{self.label} failed {self._policy.max_attempts} attempts "
            f"(EMBED_ASSETS_MAX_ATTEMPTS); last: {last.reason}"
        )

    def _attempt(
        self,
        path: str,
        body: dict,
        parse: Callable[[httpx.Response], tuple[T, int | None]],
        *,
        texts: int,
        tokens: int,
    ) -> T:
        began = time.perf_counter()
        try:
            response = self._http.post(path, json=body)
        except TRANSPORT_ERRORS as error:
            raise _Retry(self.scrub(f"{type(error).__name__}: {error}")) from None
        status = response.status_code
        if status in REJECT_STATUSES:
            raise Rejected(status, self.scrub(response.text))
        if status in RETRY_STATUSES:
            # 429: the server is up and says when to come back, so it is not a fault.
            raise _Retry(
                f"HTTP {status}",
                retry_after_seconds(response.headers.get("retry-after")),
                fault=status != 429,
            )
        if not 200 <= status < 300:
            hint = f" ({_HINTS[status]})" if status in _HINTS else ""
            raise ProviderError(
                f"{self.label} answered HTTP {status}{hint}: {self.scrub(response.text)}"
            )
        try:
            result, counted = parse(response)
        except BadResponse as error:
            raise _Retry(self.scrub(f"bad response: {error}")) from None
        self.breaker.succeeded()
        self._metrics.succeeded(texts, counted or tokens, time.perf_counter() - began)
        return result

    def _pace(self, tokens: int, cancel: threading.Event) -> None:
        while True:
            wait = self.budget.reserve(tokens)
            if wait <= 0:
                return
            if cancel.wait(wait):
                raise Cancelled()
            # A Retry-After that came while this request waited voids its slot: it takes one
            # after the hold, so that the requests held do not all start at its end.
            if not self.budget.held():
                return
