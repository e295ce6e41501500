"""The embedding provider interface, its metrics and the validation of what a provider returns.

Providers: `offline` (the default, no network), `ollama`, `openai`, `together`, `openai_compatible`
(HTTP, in `http_providers`) and `sentence_transformers` (local model, optional extra `[local]`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from embed_assets.lib.errors import Failure

OFFLINE_DIMENSIONS = 384  # the offline provider's dimensions when EMBED_ASSETS_DIMENSIONS is unset
HTTP_PROVIDERS = ("ollama", "openai", "together", "openai_compatible")
PROVIDERS = ("offline", *HTTP_PROVIDERS, "sentence_transformers")


class ProviderError(Failure):
    """The provider could not embed the texts; the message says why and never holds an API key."""


class ProviderMetrics:
    """Thread-safe counters of one provider instance, for the run's metadata.

    `provider_calls` counts requests made (for HTTP providers every attempt, retries included),
    `retries` the attempts that repeated an earlier one, `texts_sent` and `tokens` the texts and
    tokens of successful requests (tokens as counted by the server when it says, else estimated),
    `latencies` the seconds each successful request took."""

    def __init__(self, price_per_million_tokens: float = 0.0) -> None:
        self.price_per_million_tokens = price_per_million_tokens
        self._lock = threading.Lock()
        self.provider_calls = 0
        self.retries = 0
        self.texts_sent = 0
        self.tokens = 0
        self.truncated = 0
        self.latencies: list[float] = []
        self.breaker = "closed"

    def add(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def succeeded(self, texts: int, tokens: int, seconds: float) -> None:
        with self._lock:
            self.texts_sent += texts
            self.tokens += tokens
            self.latencies.append(seconds)

    def snapshot(self) -> dict:
        with self._lock:
            latencies = np.array(self.latencies or [0.0]) * 1000
            report = {
                "provider_calls": self.provider_calls,
                "retries": self.retries,
                "texts_sent": self.texts_sent,
                "tokens": self.tokens,
                "truncated": self.truncated,
                "latency_p50_ms": round(float(np.percentile(latencies, 50)), 3),
                "latency_p95_ms": round(float(np.percentile(latencies, 95)), 3),
                "breaker": self.breaker,
            }
            if self.price_per_million_tokens:
                report["estimated_cost"] = self.tokens * self.price_per_million_tokens / 1e6
            return report


class EmbeddingProvider(Protocol):
    """Turns texts into vectors. `embed` returns a float32 array of shape (len(texts), dimensions),
    in the order of `texts`. A vector may be NaN or zero: the caller refuses such rows one by one.
    `cache_vectors` says whether its vectors are worth keeping in the embedding cache: False for a
    provider that computes a vector faster than the cache reads one back."""

    name: str
    model: str
    dimensions: int
    cache_vectors: bool
    metrics: ProviderMetrics

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def estimate_tokens(text: str) -> int:
    """ceil(UTF-8 bytes / 3): a third more than the ~4 bytes per token of English prose, about right
    for code and CJK, so that an input or a batch that fits by this count fits the real
    tokenizer."""
    # surrogatepass: a lone surrogate (from a surrogateescape decode) counts like any code point.
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return -(-size // 3)


def fit_inputs(
    texts: Sequence[str], max_tokens: int, policy: str, metrics: ProviderMetrics
) -> tuple[list[str], list[int]]:
    """The texts with those over `max_tokens` estimated tokens cut at a character boundary
    (policy "truncate", counted in `metrics.truncated`) or refused before anything is sent
    (policy "reject", a ProviderError naming the input); and their estimated tokens."""
    texts = list(texts)
    tokens = [estimate_tokens(text) for text in texts]
    for i, count in enumerate(tokens):
        if count <= max_tokens:
            continue
        if policy == "reject":
            raise ProviderError(
                f"input {i} has about {count} tokens, more than EMBED_ASSETS_MAX_INPUT_TOKENS="
                f"{max_tokens}, and EMBED_ASSETS_LONG_INPUT=reject: nothing was sent"
            )
        # estimate_tokens counts 3 bytes a token: keep 3 * max_tokens bytes, whole characters only.
        texts[i] = texts[i].encode("utf-8")[: 3 * max_tokens].decode("utf-8", "ignore")
        tokens[i] = estimate_tokens(texts[i])
        metrics.add(truncated=1)
    return texts, tokens


# A model's vectors blended with an offline model's (lib.providers.lexical): `<model>+<offline
# model>*<weight>`.
BLENDED_MODEL = re.compile(r"^(?P<model>.+)\+offline-hash-v(?P<version>\d+)\*(?P<weight>[0-9.]+)$")


def space_name(model: str, dimensions: int) -> str:
    """The embedding space: one pgvector table per (model, dimensions), named after both; a
    blend's name keeps its offline model and weight whole (the model's part is shortened), so
    that two weights never share a table."""
    blend = BLENDED_MODEL.match(model)
    if blend is not None:
        weight = _slug(blend["weight"])
        return f"{_slug(blend['model'])[:28]}_lexv{blend['version']}_{weight}_{dimensions}"
    return f"{_slug(model)[:40]}_{dimensions}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "model"


def vector_problems(vectors: np.ndarray, count: int, dimensions: int) -> dict[int, str]:
    """Why vectors must not be stored, by row, for the rows that must not (the others are fine).
    A response of the wrong shape is the provider's fault as a whole and raises."""
    if vectors.ndim != 2 or vectors.shape[0] != count:
        raise ValueError(
            f"provider returned {vectors.shape[0] if vectors.ndim else 0} vectors for {count} texts"
        )
    if vectors.shape[1] != dimensions:
        raise ValueError(
            f"provider returned {vectors.shape[1]}-dimensional vectors; the "
            f"embedding space has {dimensions} dimensions"
        )
    # Whole-array operations: a Python step per row cost 0.3 s for 24K vectors.
    finite = np.isfinite(vectors).all(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):  # rows with NaN or inf are not finite
        zero = finite & (np.einsum("ij,ij->i", vectors, vectors) <= 1e-12)  # norm <= 1e-6
    return {
        int(i): "zero vector" if finite[i] else "not finite (NaN or inf)"
        for i in np.flatnonzero(~finite | zero)
    }
