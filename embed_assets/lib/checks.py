"""Each asset's checks, as data: a name, the function of `embed_assets.lib.quality` that
decides it, its severity, whether it blocks what is downstream, and what it means. Dagster
declares them (`embed_assets.components.checks`); `embed-assets status` evaluates them over the
whole store without Dagster (`evaluate_store`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from embed_assets.lib import quality
from embed_assets.lib.quality import ERROR, WARN
from embed_assets.lib.store import Store


@dataclass(frozen=True)
class Check:
    name: str
    evaluate: Callable[[quality.Scope], quality.Outcome]
    severity: str  # of a failure, as declared; an outcome may say WARN for a lesser failure
    blocking: bool
    description: str


REPOSITORY_CHECKS = [
    Check(
        "rejected_ratio",
        quality.rejected_ratio,
        ERROR,
        False,
        "Source rows rejected by validation are at most EMBED_ASSETS_CHECK_MAX_REJECTED_RATIO "
        "of the window's rows",
    ),
    Check(
        "required_fields",
        quality.required_fields,
        ERROR,
        False,
        "Every repository has an owner/name and an http(s) URL",
    ),
    Check(
        "no_duplicate_names",
        quality.duplicate_names,
        WARN,
        False,
        "No two repositories have names equal up to case",
    ),
]
CHUNK_CHECKS = [
    Check("no_empty_chunks", quality.no_empty_chunks, ERROR, False, "Every chunk has text"),
    Check(
        "chunk_sizes",
        quality.chunk_sizes,
        WARN,
        False,
        "Every chunk has at most EMBED_ASSETS_CHUNK_CHARS characters",
    ),
    Check(
        "repositories_chunked",
        quality.repositories_chunked,
        ERROR,
        False,
        "Every repository has at least one chunk",
    ),
]
EMBEDDING_CHECKS = [
    Check(
        "vector_dimensions",
        quality.vector_dimensions,
        ERROR,
        True,
        "Every vector has the embedding space's dimensions",
    ),
    Check(
        "finite_vectors",
        quality.finite_vectors,
        ERROR,
        True,
        "No stored vector holds NaN or inf (WARN when the provider sent some and they were "
        "refused)",
    ),
    Check(
        "no_zero_vectors",
        quality.no_zero_vectors,
        ERROR,
        True,
        "No stored vector is zero (WARN when the provider sent some and they were refused)",
    ),
    Check(
        "vector_norms",
        quality.vector_norms,
        ERROR,
        True,
        "Every vector's norm is within EMBED_ASSETS_CHECK_MIN_NORM..EMBED_ASSETS_CHECK_MAX_NORM",
    ),
    Check(
        "coverage",
        quality.coverage,
        ERROR,
        True,
        "Every chunk has a vector of its current text in the active space (WARN when the "
        "missing ones were refused and stay pending)",
    ),
    Check(
        "no_orphan_vectors",
        quality.no_orphan_vectors,
        ERROR,
        True,
        "Every vector belongs to an existing chunk",
    ),
    Check(
        "refused_vectors",
        quality.refused_vectors,
        ERROR,
        False,
        "The provider returned no vector that validation had to refuse (not blocking: the "
        "store stays clean; this is the one that alerts)",
    ),
]

# The whole active space (cluster_index is not partitioned); none blocks: nothing is downstream.
CLUSTER_CHECKS = [
    Check(
        "every_vector_assigned",
        quality.every_vector_assigned,
        ERROR,
        False,
        "Every repository with a first-chunk vector in the active space is in a cluster (or "
        "was removed by an operator), by its current vector",
    ),
    Check(
        "no_empty_clusters",
        quality.no_empty_clusters,
        ERROR,
        False,
        "No cluster is empty, and each cluster's size is its member count",
    ),
    Check(
        "cluster_sizes",
        quality.cluster_sizes,
        WARN,
        False,
        "The largest cluster holds at most EMBED_ASSETS_CHECK_MAX_CLUSTER_SHARE of all members",
    ),
    Check(
        "hnsw_recall",
        quality.hnsw_recall,
        ERROR,
        False,
        "Searches through the HNSW index find what exact search finds: recall@10 over sampled "
        "stored vectors at least EMBED_ASSETS_CHECK_MIN_RECALL (WARN below it, ERROR below "
        "EMBED_ASSETS_CHECK_ERROR_RECALL)",
    ),
]


def store_checks(repositories: bool) -> dict[str, list[Check]]:
    """The checks that look at the store alone, by asset (`rows` has its checks for the
    repositories kind only: a table's rows are what its columns say)."""
    by_asset = {"chunks": CHUNK_CHECKS, "embeddings": EMBEDDING_CHECKS}
    by_asset["cluster_index"] = CLUSTER_CHECKS
    return ({"rows": REPOSITORY_CHECKS} if repositories else {}) | by_asset


def evaluate_store(store: Store, collection: str, chunk_chars: int) -> list:
    """Every store check of a collection over all of its rows: {"asset", "name", "passed",
    "severity", "description"}, in the order the assets run."""
    scope = quality.Scope(store, quality.Window(), quality.QualitySettings.from_env(), chunk_chars)
    results = []
    for asset, checks in store_checks(repositories=store.table_spec is None).items():
        for check in checks:
            outcome = check.evaluate(scope)
            results.append(
                {
                    "asset": f"{collection}/{asset}",
                    "name": check.name,
                    "passed": outcome.passed,
                    "severity": outcome.severity,
                    "description": outcome.description,
                }
            )
    return results
