"""Resources: the vector database, the embedding provider and the GitHub source, configured from
the environment."""

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field

from embed_assets.lib.budget import BudgetDatabase
from embed_assets.lib.database import database_url
from embed_assets.lib.providers import EmbeddingProvider, build_provider, opened_provider
from embed_assets.lib.settings import (
    GITHUB_TOKEN_VARIABLE,
    PROVIDER_FIELDS,
    Settings,
    api_key_variable,
)
from embed_assets.lib.sources.github.client import API_URL, GitHubClient, StoreETags
from embed_assets.lib.store import Store, TableSpec, open_store


class DatabaseResource(dg.ConfigurableResource):
    """PostgreSQL with pgvector: the server at `url`, or the embedded one under `home`."""

    url: str | None = None
    home: str = ".embed_assets"
    db_schema: str = "embed_assets"
    source_table: str = "repositories_source"
    hnsw_m: int = Settings.hnsw_m  # 0: chosen by the table's size at build time
    hnsw_ef_construction: int = Settings.hnsw_ef_construction
    ef_search: int = Settings.ef_search

    def settings(self) -> Settings:
        return Settings(
            database_url=self.url,
            home=Path(self.home),
            schema=self.db_schema,
            source_table=self.source_table,
            hnsw_m=self.hnsw_m,
            hnsw_ef_construction=self.hnsw_ef_construction,
            ef_search=self.ef_search,
        )

    @contextmanager
    def open(self, table: TableSpec | None = None) -> Iterator[Store]:
        """The store of a table collection (`table`), else of the repositories one."""
        settings = self.settings()
        with open_store(database_url(settings), settings, table) as store:
            yield store


class EmbeddingProviderResource(dg.ConfigurableResource):
    """Which model turns chunks into vectors, and how it is called; the offline provider needs no
    network. Each field is the setting EMBED_ASSETS_<FIELD> (see the README); 0 means "default"."""

    provider: str = "offline"
    model: str = ""
    dimensions: int = 0
    lexical_weight: float = -1.0  # -1: the provider's default
    base_url: str = ""
    # An EnvVar in practice (see resources_from): the UI shows the variable's name, never the key.
    api_key: str | None = Field(default=None, repr=False)
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
    budget_scope: str = "deployment"
    budget_name: str = ""

    def settings(self) -> Settings:
        values = {name: getattr(self, name) for name in PROVIDER_FIELDS}
        return Settings(**{**values, "api_key": self.api_key or ""})

    def build(self) -> EmbeddingProvider:
        """A new provider; an HTTP one holds a pooled client: prefer `open()`, which closes it."""
        return build_provider(self.settings())

    @contextmanager
    def open(self, database: DatabaseResource | None = None) -> Iterator[EmbeddingProvider]:
        """The provider for one run (one pooled HTTP client), closed at the end; with `database`,
        an HTTP provider draws on the budget shared by every run using that database."""
        budgets = None
        if database is not None:
            settings = database.settings()
            budgets = BudgetDatabase(database_url(settings), settings)
        with opened_provider(self.settings(), budgets) as provider:
            yield provider


class EmbeddingCacheResource(dg.ConfigurableResource):
    """The embedding cache shared by all runs: content-addressed vectors in Postgres, bounded."""

    max_entries: int = 1_000_000
    max_age_days: float = 0.0  # 0: no age bound


class GitHubSourceResource(dg.ConfigurableResource):
    """Where the repositories asset fetches its window from before reading the source table: a
    search `query` (EMBED_ASSETS_GITHUB_QUERY) or the repositories `starred` by a user
    (EMBED_ASSETS_GITHUB_STARRED, `@me` for the token's owner); neither set: no fetch."""

    query: str = ""
    starred: str = ""
    base_url: str = API_URL
    # An EnvVar (GITHUB_TOKEN) in practice: the UI shows the variable's name, never the token.
    token: str | None = Field(default=None, repr=False)
    max_wait: float = 900.0  # longest rate-limit wait before the run fails (seconds)

    def configured(self) -> bool:
        return bool(self.query or self.starred)

    def source(self) -> dict[str, str]:
        """The keyword arguments of lib.github_source.load_github: query or starred."""
        return {"query": self.query} if self.query else {"starred": self.starred}

    @contextmanager
    def client(self, store: Store) -> Iterator[GitHubClient]:
        """A client for one run, its ETags in the store's `github_etags` table."""
        with GitHubClient(
            self.token or None,
            base_url=self.base_url,
            etags=StoreETags(store),
            max_wait=self.max_wait,
        ) as client:
            yield client


def resources_from(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources every collection shares, configured from `settings`. The same objects for
    equal settings: Dagster merges definitions only when a key's resource is the very same
    object, and each collection's Component brings them (so a user's project writes none)."""
    return dict(_resources(settings))


def shared_definitions(settings: Settings) -> dg.Definitions:
    """The resources and the in-process executor: the graph is a chain, so a process per step
    bought no parallelism and cost seconds of imports per step (a 800-row sensor run took 56 s)."""
    return dg.Definitions(resources=resources_from(settings), executor=dg.in_process_executor)


@functools.cache
def _resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    database_url_setting = dg.EnvVar("EMBED_ASSETS_DATABASE_URL") if settings.database_url else None
    # Likewise the API key, by the name of whichever variable holds it (OPENAI_API_KEY...).
    api_key_setting = (
        dg.EnvVar(api_key_variable(settings.provider) or "EMBED_ASSETS_API_KEY")
        if settings.api_key
        else None
    )
    return {
        # The URL may hold a password: pass it as an EnvVar so the UI shows the name, not the value.
        "database": DatabaseResource(
            url=database_url_setting,
            home=str(settings.home),
            db_schema=settings.schema,
            source_table=settings.source_table,
            hnsw_m=settings.hnsw_m,
            hnsw_ef_construction=settings.hnsw_ef_construction,
            ef_search=settings.ef_search,
        ),
        "embedding_provider": EmbeddingProviderResource(
            **{name: getattr(settings, name) for name in PROVIDER_FIELDS if name != "api_key"},
            api_key=api_key_setting,
        ),
        "embedding_cache": EmbeddingCacheResource(
            max_entries=settings.cache_max_entries, max_age_days=settings.cache_max_age_days
        ),
        "github": GitHubSourceResource(
            query=settings.github_query,
            starred=settings.github_starred,
            base_url=settings.github_url,
            token=dg.EnvVar(GITHUB_TOKEN_VARIABLE) if settings.github_token else None,
        ),
    }
