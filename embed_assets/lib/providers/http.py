"""HTTP embedding providers: Ollama (`POST {base}/api/embed`) and the OpenAI wire format
(`POST {base}/embeddings`, base ending in /v1: OpenAI, Together, vLLM, text-embeddings-inference,
LM Studio...), over the resilient client of `http_client`.

What `embed(texts)` does:
1. Inputs longer than EMBED_ASSETS_MAX_INPUT_TOKENS (estimated by `estimate_tokens`) are cut at a
   character boundary (EMBED_ASSETS_LONG_INPUT=truncate, counted in `metrics.truncated`), or the
   call fails before anything is sent, naming the input (`reject`). No input is ever dropped.
2. Consecutive inputs form batches of at most EMBED_ASSETS_BATCH_SIZE inputs and
   EMBED_ASSETS_MAX_BATCH_TOKENS estimated tokens (a longer input goes alone).
3. At most EMBED_ASSETS_MAX_CONCURRENCY batches are in flight, on threads sharing one pooled client.
   Rows come back in input order. The first failure stops the other batches.
4. A batch the server rejects (400, 413, 422) is split in halves, first half first, down to the
   input it rejects: a ProviderError names that input's index, the status and the server's reason.
   (The pipeline records per-row problems only for vectors it gets back, so a rejected input fails
   the call rather than passing as a fake vector.) Cost: about 2 * log2(batch size) more requests.
5. A response with a malformed body or the wrong number of vectors is a server fault, retried. The
   first response fixes the dimensions when EMBED_ASSETS_DIMENSIONS is unset (reading
   `dimensions` before any `embed` sends a one-text probe); when it is set, a
   first response of other dimensions is a configuration error (raised at once), and a later one,
   after the server has answered right, is a server fault (retried).
6. Rows that come back NaN, infinite or zero are asked for once more; if still bad they are
   returned as they are, and the pipeline refuses them one by one, recording why.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import numpy as np

from embed_assets.lib.providers.base import (
    ProviderError,
    ProviderMetrics,
    fit_inputs,
    vector_problems,
)
from embed_assets.lib.providers.client import (
    BadResponse,
    LocalBudget,
    Rejected,
    ResilientClient,
    RetryPolicy,
)
from embed_assets.lib.settings import API_KEY_FALLBACKS, SettingError, Settings

if TYPE_CHECKING:
    from embed_assets.lib.budget import BudgetDatabase

log = logging.getLogger(__name__)
HNSW_MAX_DIMENSIONS = 2000  # pgvector's limit for an HNSW index on `vector`
_PROBE = "dimensions probe"


@dataclass(frozen=True)
class Profile:
    """A provider's defaults; "" means the user must set it."""

    base_url: str
    model: str
    batch_size: int
    max_concurrency: int
    max_input_tokens: int
    needs_key: bool


# Ollama embeds a batch on one local model, so big batches and many requests only queue up there;
# hosted OpenAI-format servers take up to 2048 inputs and serve many requests at once.
PROFILES = {
    "ollama": Profile("http://localhost:11434", "nomic-embed-text", 64, 2, 2048, False),
    "openai": Profile("https://api.openai.com/v1", "text-embedding-3-small", 256, 8, 8191, True),
    "together": Profile("https://api.together.xyz/v1", "", 256, 8, 8191, True),
    "openai_compatible": Profile("", "", 256, 8, 8191, False),
}


class HttpEmbeddingProvider:
    """The batching, concurrency and checks of the module docstring; subclasses speak a wire format
    (`path`, `_body`, `_read`). A context manager: `close()` closes the pooled client."""

    path: str
    cache_vectors = True  # each vector costs a request (and money)

    def __init__(self, settings: Settings, budgets: BudgetDatabase | None = None) -> None:
        """`budgets`: the database whose shared budget this provider draws on (see
        embed_assets.lib.budget); None, or EMBED_ASSETS_BUDGET_SCOPE=process: this process's."""
        profile = PROFILES[settings.provider]
        self.name = settings.provider
        self.model = settings.model or profile.model
        base_url = (settings.base_url or profile.base_url).rstrip("/")
        if not self.model:
            raise SettingError(f"EMBED_ASSETS_MODEL must name the model for provider {self.name}")
        if not base_url:
            raise SettingError(
                f"EMBED_ASSETS_BASE_URL must be set for provider {self.name} "
                "(e.g. http://localhost:8000/v1)"
            )
        if profile.needs_key and not settings.api_key:
            raise SettingError(
                f"provider {self.name} needs an API key: set EMBED_ASSETS_API_KEY "
                f"or {API_KEY_FALLBACKS[self.name]}"
            )
        self.base_url = str(httpx.URL(base_url).copy_with(userinfo=b""))  # for messages
        self.configured_dimensions = settings.dimensions
        self._dimensions = settings.dimensions or None
        self._dimensions_confirmed = False
        self._lock = threading.Lock()
        self.batch_size = settings.batch_size or profile.batch_size
        self.max_batch_tokens = settings.max_batch_tokens
        self.max_concurrency = settings.max_concurrency or profile.max_concurrency
        self.max_input_tokens = settings.max_input_tokens or profile.max_input_tokens
        self.long_input = settings.long_input
        self.metrics = ProviderMetrics(settings.price_per_million_tokens)
        self.budget_name = settings.budget_name or f"{self.name} {self.base_url} {self.model}"
        limits = (settings.requests_per_minute, settings.tokens_per_minute)
        budget = (
            budgets.open(self.budget_name, *limits)
            if budgets is not None and settings.budget_scope == "deployment"
            else LocalBudget(*limits)
        )
        self._client = ResilientClient(
            f"provider {self.name} at {self.base_url}",
            base_url,
            settings.api_key,
            timeout=settings.timeout,
            connect_timeout=settings.connect_timeout,
            max_concurrency=self.max_concurrency,
            policy=RetryPolicy(
                settings.max_attempts,
                settings.backoff_base,
                settings.backoff_max,
                settings.retry_after_max,
            ),
            breaker_threshold=settings.breaker_threshold,
            budget=budget,
            metrics=self.metrics,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, "
            f"base_url={self.base_url!r})"
        )

    def __enter__(self) -> HttpEmbeddingProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    @property
    def dimensions(self) -> int:
        """EMBED_ASSETS_DIMENSIONS, or those of the first response (embedding a probe if needed)."""
        if self._dimensions is None:
            self.embed([_PROBE])
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 vectors of shape (len(texts), dimensions), in the order of `texts`; a row may be
        NaN or zero when the server keeps sending it so (see the module docstring, point 6)."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one str")
        texts, tokens = fit_inputs(texts, self.max_input_tokens, self.long_input, self.metrics)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._embed_batches(texts, tokens, list(range(len(texts))))
        bad = sorted(vector_problems(vectors, len(texts), self._dimensions))
        if bad:
            log.warning(
                "%s returned %d unusable vectors (NaN, infinite or zero); asking once more",
                self._client.label,
                len(bad),
            )
            vectors[bad] = self._embed_batches(
                [texts[i] for i in bad], [tokens[i] for i in bad], bad
            )
        return vectors

    def _batches(self, tokens: list[int]) -> list[slice]:
        batches, start, total = [], 0, 0
        for i, count in enumerate(tokens):
            if i > start and (
                i - start == self.batch_size or total + count > self.max_batch_tokens
            ):
                batches.append(slice(start, i))
                start, total = i, 0
            total += count
        batches.append(slice(start, len(tokens)))
        return batches

    def _embed_batches(self, texts: list[str], tokens: list[int], indices: list[int]) -> np.ndarray:
        batches = self._batches(tokens)
        cancel = threading.Event()
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(batches))) as pool:
            futures = [
                pool.submit(self._embed_isolating, texts[b], tokens[b], indices[b], cancel)
                for b in batches
            ]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            finally:
                cancel.set()  # after a failure (or an interrupt) the other batches stop waiting
                for future in futures:
                    future.cancel()
        failures = [future.exception() for future in done if future.exception()]
        if failures:
            raise failures[0]
        return np.concatenate([future.result() for future in futures])

    def _embed_isolating(
        self, texts: list[str], tokens: list[int], indices: list[int], cancel: threading.Event
    ) -> np.ndarray:
        """One batch; a rejected batch is split to find the input the server rejects."""
        try:
            return self._client.post(
                self.path,
                self._body(texts),
                lambda response: self._parse(response, len(texts)),
                texts=len(texts),
                tokens=sum(tokens),
                cancel=cancel,
            )
        except Rejected as rejected:
            if len(texts) == 1:
                raise ProviderError(
                    f"{self._client.label} rejected input {indices[0]} ({texts[0][:60]!r}, "
                    f"about {tokens[0]} tokens): {rejected}"
                ) from None
            log.info(
                "%s rejected a batch of %d inputs (%s); splitting it to find the input",
                self._client.label,
                len(texts),
                rejected,
            )
        half = len(texts) // 2
        return np.concatenate(
            [
                self._embed_isolating(texts[:half], tokens[:half], indices[:half], cancel),
                self._embed_isolating(texts[half:], tokens[half:], indices[half:], cancel),
            ]
        )

    def _parse(self, response: httpx.Response, count: int) -> tuple[np.ndarray, int | None]:
        try:
            payload = response.json()
        except ValueError as error:
            raise BadResponse(f"not JSON ({error})") from None
        try:
            rows, tokens = self._read(payload)
            vectors = np.array(rows, dtype=np.float32)
        except (KeyError, IndexError, TypeError, ValueError) as error:  # binascii.Error too
            raise BadResponse(f"unexpected body ({type(error).__name__}: {error})") from None
        if vectors.ndim != 2 or len(vectors) != count:
            raise BadResponse(f"{len(rows)} vectors for {count} inputs")
        self._check_dimensions(vectors.shape[1])
        return vectors, tokens if isinstance(tokens, int) else None

    def _check_dimensions(self, found: int) -> None:
        with self._lock:
            if self._dimensions is None:
                if found > HNSW_MAX_DIMENSIONS:
                    raise ProviderError(
                        f"model {self.model!r} of {self._client.label} returns {found}-dimensional "
                        f"vectors; pgvector's HNSW index takes at most {HNSW_MAX_DIMENSIONS}: set "
                        "EMBED_ASSETS_DIMENSIONS (models such as OpenAI's text-embedding-3 shorten "
                        "their vectors)"
                    )
                self._dimensions = found
            if found == self._dimensions:
                self._dimensions_confirmed = True
                return
            if not self._dimensions_confirmed:
                raise ProviderError(
                    f"model {self.model!r} of {self._client.label} returned {found}-dimensional "
                    f"vectors, but EMBED_ASSETS_DIMENSIONS is {self._dimensions}: set it to "
                    f"{found}, "
                    "or unset it to use the model's own"
                )
        raise BadResponse(f"{found}-dimensional vectors, expected {self._dimensions}")

    def _body(self, texts: list[str]) -> dict:
        raise NotImplementedError

    def _read(self, payload: dict) -> tuple[list, object]:
        """The vectors (lists or arrays, in input order) and the server's token count, if any."""
        raise NotImplementedError


class OllamaProvider(HttpEmbeddingProvider):
    """Ollama's native API: `POST /api/embed` with a list `input`; vectors in `embeddings`."""

    path = "/api/embed"

    def _body(self, texts: list[str]) -> dict:
        # With `reject`, Ollama must fail on an input beyond the model's context, not cut it.
        body = {"model": self.model, "input": texts, "truncate": self.long_input == "truncate"}
        if self.configured_dimensions:
            body["dimensions"] = self.configured_dimensions
        return body

    def _read(self, payload: dict) -> tuple[list, object]:
        return payload["embeddings"], payload.get("prompt_eval_count")


class OpenAIFormatProvider(HttpEmbeddingProvider):
    """The OpenAI wire format: `POST /embeddings`; vectors in `data[i].embedding` by `index`,
    asked for as base64 little-endian float32 (a quarter of the JSON), read as float lists too."""

    path = "/embeddings"

    def _body(self, texts: list[str]) -> dict:
        body = {"model": self.model, "input": texts, "encoding_format": "base64"}
        # Sent only when set: servers without Matryoshka models may reject the field, and OpenAI's
        # models before text-embedding-3 do.
        if self.configured_dimensions and (
            self.name != "openai" or self.model.startswith("text-embedding-3")
        ):
            body["dimensions"] = self.configured_dimensions
        return body

    def _read(self, payload: dict) -> tuple[list, object]:
        data = sorted(payload["data"], key=lambda item: item["index"])
        if [item["index"] for item in data] != list(range(len(data))):
            raise BadResponse("the indices of `data` are not 0..n-1")
        rows = [
            np.frombuffer(base64.b64decode(e, validate=True), dtype="<f4")
            if isinstance(e, str)
            else e
            for e in (item["embedding"] for item in data)
        ]
        return rows, (payload.get("usage") or {}).get("prompt_tokens")


def http_provider(
    settings: Settings, budgets: BudgetDatabase | None = None
) -> HttpEmbeddingProvider:
    if settings.provider == "ollama":
        return OllamaProvider(settings, budgets)
    return OpenAIFormatProvider(settings, budgets)
