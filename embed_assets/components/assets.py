"""A collection's asset graph: rows → chunks → embeddings, partitioned by month of the row's time,
then cluster_index over the whole embedding space; every key prefixed by the collection's name.

Monthly, not daily: the flagship data spans 2008..now, so monthly is ~220 partitions of hundreds
to thousands of rows each, while daily would be ~7,000 mostly empty ones, and a Dagster run costs
about half a second whatever it holds. Every asset handles a partition range in one run
(`BackfillPolicy.single_run`), so a backfill of years is one run and one HNSW index build.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from embed_assets.defs.resources import (
    DatabaseResource,
    EmbeddingCacheResource,
    EmbeddingProviderResource,
    GitHubSourceResource,
)
from embed_assets.lib import pipeline
from embed_assets.lib.clusters.index import sync_cluster_index
from embed_assets.lib.pipeline import StepResult
from embed_assets.lib.quality import markdown_table
from embed_assets.lib.settings import Settings
from embed_assets.lib.sources.base import SourceKind
from embed_assets.lib.sources.github.load import load_github
from embed_assets.lib.sources.repositories import REPOSITORIES

one_run = dg.BackfillPolicy.single_run()
# The window of a collection with no partitions: every row (their time is a constant inside it).
ALL_TIME = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


def monthly_partitions(settings: Settings) -> dg.MonthlyPartitionsDefinition:
    return dg.MonthlyPartitionsDefinition(start_date=settings.partition_start, end_offset=1)


def metadata_of(figures: dict) -> dict:
    """Figures as Dagster metadata: `row_count` as dagster/row_count, example lists and row
    previews as Markdown, floats rounded."""
    metadata: dict = {}
    for key, value in figures.items():
        if key == "row_count":
            metadata["dagster/row_count"] = value
        elif key.endswith("_examples"):
            if value:
                metadata[key] = dg.MetadataValue.md("\n".join(f"- `{v}`" for v in value))
        elif key == "preview":  # a few rows, as a Markdown table
            if value:
                metadata[key] = dg.MetadataValue.md(markdown_table(value))
        elif isinstance(value, float):
            metadata[key] = dg.MetadataValue.float(round(value, 4))
        else:
            metadata[key] = value
    return metadata


def recorded(
    context: dg.AssetExecutionContext, result: StepResult, by_month: bool, extra: dict | None = None
) -> Iterator:
    """The events of a step: each month of the run's partitions carries its own counts (so the
    UI's per-partition plots mean something) and the whole step's figures (`extra` too); a run
    over several months records the range's totals once more, as one observation of the asset.
    An unpartitioned asset's one materialisation carries the totals."""
    extra = extra or {}
    if not by_month:
        yield dg.MaterializeResult(metadata=metadata_of(result.totals() | extra))
        return
    keys = context.partition_keys
    for key in keys:
        month = datetime.fromisoformat(key).replace(tzinfo=UTC)
        context.add_asset_metadata(metadata_of(result.month(month)), partition_key=key)
    if len(keys) > 1:
        yield dg.AssetObservation(
            asset_key=context.asset_key,
            description=f"totals of the run over {keys[0]}..{keys[-1]} ({len(keys)} months)",
            metadata=metadata_of(result.totals() | extra) | {"partitions": len(keys)},
        )
    yield dg.MaterializeResult(metadata=metadata_of(result.whole | extra))


@dataclass(frozen=True)
class CollectionAssets:
    """The four assets of one collection and what the rest of its definitions need of them."""

    name: str
    settings: Settings
    monthly: dg.MonthlyPartitionsDefinition
    rows: dg.AssetsDefinition
    chunks: dg.AssetsDefinition
    embeddings: dg.AssetsDefinition
    cluster_index: dg.AssetsDefinition
    chunks_config: type[dg.Config]
    cluster_index_config: type[dg.Config]
    source: SourceKind
    monthly_partitioned: bool  # False: a collection with no time column, one window for all

    @property
    def partitioned(self) -> list[dg.AssetsDefinition]:
        """The assets over the rows' windows (months, or the one window of all time)."""
        return [self.rows, self.chunks, self.embeddings]


def collection_assets(
    name: str, settings: Settings, source: SourceKind = REPOSITORIES, by_month: bool = True
) -> CollectionAssets:
    """The assets `<name>/rows`, `<name>/chunks`, `<name>/embeddings`, `<name>/cluster_index`,
    their defaults from `settings` (read when the definitions are built)."""
    monthly = monthly_partitions(settings)
    partitions = {"partitions_def": monthly, "backfill_policy": one_run} if by_month else {}
    table = source.table_spec

    def window(context: dg.AssetExecutionContext):
        return context.partition_time_window if by_month else ALL_TIME

    class ChunksConfig(dg.Config):
        max_chars: int = settings.chunk_chars
        overlap: int = settings.chunk_overlap
        max_chunks: int = settings.max_chunks

    class ClusterIndexConfig(dg.Config):
        threshold: float = settings.cluster_threshold
        near_duplicate: float = settings.near_duplicate_threshold
        full: bool = False  # re-cluster everything (the weekly schedule sets it)

    @dg.asset(
        key_prefix=[name],
        name="rows",
        **partitions,
        kinds={"postgres"},
        group_name=name,
    )
    def rows(
        context: dg.AssetExecutionContext, database: DatabaseResource, github: GitHubSourceResource
    ):
        """Normalised, validated rows from the source; bad rows are recorded in
        `rejected_rows` with the reason, and rows gone from the source are removed. With a
        GitHub source configured, a repositories collection's window is first fetched from
        GitHub's REST API and upserted into the source table (conditional requests: unchanged
        pages cost no rate limit)."""
        start, end = window(context)
        with database.open(table) as store:
            fetched: dict = {}
            if table is None and github.configured():
                if not github.token:
                    context.log.warning(
                        "GITHUB_TOKEN is not set: GitHub is called unauthenticated "
                        "(10 search requests a minute)"
                    )
                with github.client(store) as client:
                    loaded = load_github(store, client, start, end, **github.source())
                context.log.info(loaded.describe())
                fetched = loaded.metadata()
            since = store.clock()
            result = pipeline.sync_rows(store, start, end, source)
            if table is None:
                fetched["preview"] = store.changed_repositories(start, end, since, 5)
            yield from recorded(context, result, by_month, fetched)

    @dg.asset(
        key_prefix=[name],
        **partitions,
        kinds={"postgres"},
        group_name=name,
        deps=[rows],
    )
    def chunks(context: dg.AssetExecutionContext, config: ChunksConfig, database: DatabaseResource):
        """Texts to embed: the template of each row split with overlap on paragraph and
        sentence boundaries; stable ids `key#position`, sha256 of each exact text."""
        start, end = window(context)
        with database.open(table) as store:
            result = pipeline.sync_chunks(
                store,
                start,
                end,
                config.max_chars,
                config.overlap,
                source,
                max_chunks=config.max_chunks,
            )
            yield from recorded(context, result, by_month)

    # The pool (its limit is in dagster.yaml) bounds how many runs call the provider at once.
    @dg.asset(
        key_prefix=[name],
        **partitions,
        kinds={"postgres", "pgvector"},
        group_name=name,
        deps=[chunks],
        pool="embedding_provider",
    )
    def embeddings(
        context: dg.AssetExecutionContext,
        database: DatabaseResource,
        embedding_provider: EmbeddingProviderResource,
        embedding_cache: EmbeddingCacheResource,
    ):
        """One vector per chunk in the embedding space of the provider's model, in pgvector with an
        HNSW cosine index. Only chunks whose text has no stored vector and no cached one are sent to
        the provider; invalid vectors are refused and their chunks stay pending."""
        start, end = window(context)
        with database.open(table) as store, embedding_provider.open(database) as provider:
            result = pipeline.sync_embeddings(
                store,
                start,
                end,
                provider,
                cache_max_entries=embedding_cache.max_entries,
                cache_max_age_days=embedding_cache.max_age_days or None,
            )
            yield from recorded(
                context,
                result,
                by_month,
                {"provider": provider.name, "model": provider.model} | provider.metrics.snapshot(),
            )

    @dg.asset(
        key_prefix=[name],
        kinds={"postgres", "scikit-learn"},
        group_name=name,
        deps=[embeddings],
        automation_condition=(
            # eager, except that months never materialised (most are empty) must not hold it
            # back; and not while a blocking check of embeddings has failed. "Passed" would
            # not do: a run over a range of months records its checks without tying them to
            # each month's materialisation, and empty months have no check at all.
            dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
            & dg.AutomationCondition.all_deps_match(
                dg.AutomationCondition.all_checks_match(
                    ~dg.AutomationCondition.check_failed(), blocking_only=True
                )
            ).with_label("no_blocking_check_of_deps_failed")
        ),
    )
    def cluster_index(
        context: dg.AssetExecutionContext, config: ClusterIndexConfig, database: DatabaseResource
    ):
        """Clusters of similar rows in the active embedding space: new and changed vectors join
        the most similar cluster (average cosine ≥ threshold) or start one; vanished ones
        leave; a full re-cluster, with stable ids, when asked or when drift passes a bound. Each
        cluster has a label from its members' most distinguishing terms, a representative and
        near-duplicates."""
        with database.open(table) as store:
            return dg.MaterializeResult(
                metadata=metadata_of(
                    sync_cluster_index(
                        store,
                        threshold=config.threshold,
                        near_duplicate=config.near_duplicate,
                        full=config.full,
                    )
                )
            )

    return CollectionAssets(
        name=name,
        settings=settings,
        monthly=monthly,
        rows=rows,
        chunks=chunks,
        embeddings=embeddings,
        cluster_index=cluster_index,
        chunks_config=ChunksConfig,
        cluster_index_config=ClusterIndexConfig,
        source=source,
        monthly_partitioned=by_month,
    )
