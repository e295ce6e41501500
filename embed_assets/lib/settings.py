"""Settings read from environment variables, validated once, with errors that name the variable."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path

from embed_assets.lib import hnsw
from embed_assets.lib.errors import UsageError

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# A GitHub login (letters, digits, single hyphens, at most 39), or @me for the token's owner.
_GITHUB_USER = re.compile(r"^(@me|[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})$")
GITHUB_TOKEN_VARIABLE = "GITHUB_TOKEN"
# A search query's own creation-time qualifier, which would fight the window added to it.
CREATED_QUALIFIER = re.compile(r"(^|\s)-?created:", re.IGNORECASE)


# Fields whose 0 in code means "the default": written out in the environment, 0 is a mistake.
_ZERO_IS_UNSET = ("batch_size", "max_concurrency", "dimensions")


def redacted(url: str) -> str:
    """A URL-like text with anything between `:` and `@` in its authority replaced."""
    return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url)


class SettingError(UsageError):
    """A setting has a value we cannot use; the message names the environment variable."""


# Where a provider's API key is read when EMBED_ASSETS_API_KEY is not set: its own SDK's variable.
API_KEY_FALLBACKS = {"openai": "OPENAI_API_KEY", "together": "TOGETHER_API_KEY"}
LONG_INPUT_POLICIES = ("truncate", "reject")
# Where the per-minute limits and Retry-After apply: every process using the database, or one.
BUDGET_SCOPES = ("deployment", "process")
# The settings of the embedding provider, which its Dagster resource carries.
PROVIDER_FIELDS = (
    "provider",
    "model",
    "dimensions",
    "lexical_weight",
    "base_url",
    "api_key",
    "timeout",
    "connect_timeout",
    "batch_size",
    "max_batch_tokens",
    "max_concurrency",
    "max_input_tokens",
    "long_input",
    "max_attempts",
    "backoff_base",
    "backoff_max",
    "retry_after_max",
    "requests_per_minute",
    "tokens_per_minute",
    "breaker_threshold",
    "price_per_million_tokens",
    "budget_scope",
    "budget_name",
)


def _env_name(name: str) -> str:
    return "EMBED_ASSETS_" + name.upper()


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    home: Path = Path(".embed_assets")
    schema: str = "embed_assets"
    source_table: str = "repositories_source"
    provider: str = "offline"
    model: str = ""
    dimensions: int = 0  # 0: the provider's own (384 offline; discovered from an HTTP provider)
    # A model's vectors with word vectors beside them (embed_assets.lib.providers.lexical), this
    # much of the similarity (two decimals); -1: the provider's default
    # (embed_assets.lib.providers.DEFAULT_LEXICAL_WEIGHT).
    lexical_weight: float = -1.0
    partition_start: str = "2008-01-01"
    chunk_chars: int = 1500
    chunk_overlap: int = 200
    max_chunks: int = 200  # a row's chunks at most (~300 KB of text at 1500): the rest is cut
    # HNSW: 0 = chosen by the table's size when the index is built (embed_assets.lib.hnsw).
    hnsw_m: int = 0
    hnsw_ef_construction: int = 0
    ef_search: int = 80  # recall@10 >= 0.96 at 113K vectors with m=16 (embed_assets.lib.hnsw)
    # The HTTP providers (embed_assets.lib.providers.http). 0 means "the provider's default".
    base_url: str = ""
    api_key: str = field(default="", repr=False)  # never shown: see api_key_variable
    timeout: float = 60.0
    connect_timeout: float = 10.0
    batch_size: int = 0
    max_batch_tokens: int = 100_000
    max_concurrency: int = 0
    max_input_tokens: int = 0
    long_input: str = "truncate"
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 60.0
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    breaker_threshold: int = 20
    price_per_million_tokens: float = 0.0
    # The provider budget (embed_assets.lib.budget): shared through the database, or per process;
    # its name defaults to provider, server and model (one API key's limits: give them one name).
    budget_scope: str = "deployment"
    budget_name: str = ""
    # The embedding cache (embed_assets.lib.cache).
    cache_max_entries: int = 1_000_000
    cache_max_age_days: float = 0.0  # 0: no age bound
    # The cluster index (embed_assets.lib.clusters.index).
    cluster_threshold: float = 0.1  # cosine to a topic centroid (lib.clusters.algorithm)
    near_duplicate_threshold: float = 0.95
    # The GitHub source (embed_assets.lib.sources.github.client): a search query, or whose starred
    # repositories.
    github_query: str = ""
    github_starred: str = ""
    github_url: str = "https://api.github.com"
    # Read from GITHUB_TOKEN only (not EMBED_ASSETS_GITHUB_TOKEN); never shown, like api_key.
    github_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home))
        for name in ("cluster_threshold", "near_duplicate_threshold"):
            if not 0 < getattr(self, name) <= 1:
                raise SettingError(f"{_env_name(name)} must be a cosine similarity in (0, 1]")
        if self.cache_max_entries < 0 or self.cache_max_age_days < 0:
            raise SettingError(
                "EMBED_ASSETS_CACHE_MAX_ENTRIES and EMBED_ASSETS_CACHE_MAX_AGE_DAYS "
                "must not be negative"
            )
        for name in ("schema", "source_table"):
            value = getattr(self, name)
            if not _IDENTIFIER.match(value):
                raise SettingError(
                    f"{_env_name(name)} must be a lower-case SQL identifier "
                    f"(letters, digits, underscore), got {value!r}"
                )
        for name in (
            "chunk_chars",
            "max_chunks",
            "max_batch_tokens",
            "max_attempts",
            "breaker_threshold",
        ):
            if getattr(self, name) <= 0:
                raise SettingError(f"{_env_name(name)} must be a positive integer")
        for name in (
            "dimensions",
            "batch_size",
            "max_concurrency",
            "max_input_tokens",
            "requests_per_minute",
            "tokens_per_minute",
        ):
            if getattr(self, name) < 0:
                raise SettingError(
                    f"{_env_name(name)} must be a positive integer (or 0 or unset for the default)"
                )
        self._check_hnsw()
        for name in ("timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise SettingError(f"{_env_name(name)} must be a positive number of seconds")
        for name in ("backoff_base", "backoff_max", "retry_after_max", "price_per_million_tokens"):
            if not getattr(self, name) >= 0:
                raise SettingError(f"{_env_name(name)} must be a number, 0 or more")
        if self.long_input not in LONG_INPUT_POLICIES:
            raise SettingError(
                f"{_env_name('long_input')} must be one of "
                f"{', '.join(LONG_INPUT_POLICIES)}, got {self.long_input!r}"
            )
        if self.budget_scope not in BUDGET_SCOPES:
            raise SettingError(
                f"{_env_name('budget_scope')} must be one of "
                f"{', '.join(BUDGET_SCOPES)}, got {self.budget_scope!r}"
            )
        if self.base_url and not re.match(r"^https?://[^/\s]+", self.base_url):
            raise SettingError(
                f"{_env_name('base_url')} must be an http:// or https:// URL, got {self.base_url!r}"
            )
        self._check_github()
        if self.database_url is not None and not re.match(r"^postgres(ql)?://", self.database_url):
            raise SettingError(
                f"{_env_name('database_url')} must be a postgresql:// URL, got "
                f"{redacted(self.database_url)!r}"
            )
        if not 0 <= self.chunk_overlap < self.chunk_chars // 2:
            raise SettingError(
                f"{_env_name('chunk_overlap')} must be between 0 and half of "
                f"{_env_name('chunk_chars')} ({self.chunk_chars // 2})"
            )
        if not (self.lexical_weight == -1 or 0 <= self.lexical_weight <= 10):
            raise SettingError(
                f"{_env_name('lexical_weight')} must be between 0 and 10 (unset it for the "
                f"provider's default), got {self.lexical_weight:g}"
            )
        if self.provider == "offline" and self.lexical_weight > 0:
            raise SettingError(
                f"{_env_name('lexical_weight')} is for model providers: the offline provider's "
                "vectors are word vectors already"
            )
        if self.dimensions > 2000:
            raise SettingError(
                f"{_env_name('dimensions')} must be at most 2000 (pgvector HNSW limit)"
            )
        try:
            date.fromisoformat(self.partition_start)
        except ValueError:
            raise SettingError(
                f"{_env_name('partition_start')} must be a date like 2008-01-01, "
                f"got {self.partition_start!r}"
            ) from None

    def _check_github(self) -> None:
        if self.github_query and self.github_starred:
            raise SettingError(
                f"set {_env_name('github_query')} or {_env_name('github_starred')}, not both"
            )
        if CREATED_QUALIFIER.search(self.github_query):
            raise SettingError(
                f"{_env_name('github_query')} must not hold a created: qualifier: "
                "each partition adds its own window; got "
                f"{self.github_query!r}"
            )
        if self.github_starred and not _GITHUB_USER.match(self.github_starred):
            raise SettingError(
                f"{_env_name('github_starred')} must be a GitHub user name or @me "
                f"(the token's owner), got {self.github_starred!r}"
            )
        if not re.match(r"^https?://[^/\s]+", self.github_url):
            raise SettingError(
                f"{_env_name('github_url')} must be an http:// or https:// URL, "
                f"got {self.github_url!r}"
            )

    @property
    def github_source(self) -> bool:
        """Whether the repositories asset fetches from GitHub first."""
        return bool(self.github_query or self.github_starred)

    def _check_hnsw(self) -> None:
        """pgvector's bounds, checked here so that the error names the variable, not a failed
        CREATE INDEX in the middle of a run."""
        for name, (low, high) in (
            ("hnsw_m", hnsw.M_RANGE),
            ("hnsw_ef_construction", hnsw.EF_CONSTRUCTION_RANGE),
        ):
            value = getattr(self, name)
            if value != 0 and not low <= value <= high:
                raise SettingError(
                    f"{_env_name(name)} must be between {low} and {high}, or 0 "
                    f"(unset) to choose by the table's size; got {value}"
                )
        if (
            self.hnsw_m
            and self.hnsw_ef_construction
            and self.hnsw_ef_construction < 2 * self.hnsw_m
        ):
            raise SettingError(
                f"{_env_name('hnsw_ef_construction')} must be at least twice "
                f"{_env_name('hnsw_m')} ({2 * self.hnsw_m}); got "
                f"{self.hnsw_ef_construction}"
            )
        low, high = hnsw.EF_SEARCH_RANGE
        if not low <= self.ef_search <= high:
            raise SettingError(
                f"{_env_name('ef_search')} must be between {low} and {high}; got {self.ef_search}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Every field `x` is read from `EMBED_ASSETS_X`; keyword overrides win."""
        environ = os.environ if environ is None else environ
        values: dict = {}
        for f in fields(cls):
            if f.name == "github_token":
                continue  # GITHUB_TOKEN, below
            raw = environ.get(_env_name(f.name))
            if raw is None or raw == "":
                continue
            if f.type == "int":
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise SettingError(
                        f"{_env_name(f.name)} must be an integer, got {raw!r}"
                    ) from None
            elif f.type == "float":
                try:
                    values[f.name] = float(raw)
                except ValueError:
                    raise SettingError(
                        f"{_env_name(f.name)} must be a number, got {raw!r}"
                    ) from None
            else:
                values[f.name] = raw
            if f.name in _ZERO_IS_UNSET and values[f.name] == 0:
                raise SettingError(
                    f"{_env_name(f.name)} must be a positive integer (unset it for the "
                    "default), got '0'"
                )
        values.update(overrides)
        if "api_key" not in values:
            variable = api_key_variable(values.get("provider", cls.provider), environ)
            if variable:
                values["api_key"] = environ[variable]
        if "github_token" not in values and environ.get(GITHUB_TOKEN_VARIABLE):
            values["github_token"] = environ[GITHUB_TOKEN_VARIABLE]
        return cls(**values)

    @property
    def partition_start_date(self) -> date:
        return date.fromisoformat(self.partition_start)

    @property
    def model_name(self) -> str:
        """The model of the provider; the offline provider's default is its newest model (the
        older one stays reachable by its name, so spaces stored with it stay valid)."""
        return self.model or ("offline-hash-v2" if self.provider == "offline" else "")


def api_key_variable(provider: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The environment variable that holds the provider's API key: EMBED_ASSETS_API_KEY, else the
    provider's own (OPENAI_API_KEY, TOGETHER_API_KEY); None when none is set. Dagster is given this
    name as an EnvVar, so the key's value never appears in run config or the UI."""
    environ = os.environ if environ is None else environ
    for name in (_env_name("api_key"), API_KEY_FALLBACKS.get(provider)):
        if name and environ.get(name):
            return name
    return None
