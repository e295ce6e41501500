"""What the asset checks decide, with no Dagster: each check is a function from a `Scope` (a
store, a time window, the thresholds) to an `Outcome` (passed, severity, a sentence, and metadata
with counts, a few example ids and the partitions holding bad rows). The SQL is in
`Store.check_*`; `embed_assets.components.checks` turns outcomes into Dagster asset check results.

Severity: ERROR means the stored data is wrong (a check on `embeddings` then blocks what is
downstream); WARN means something worth a look that the pipeline already handles (a vector refused
before it was stored, an oversized chunk, a repository name that differs only by case).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

import numpy as np

from embed_assets.lib.clusters.sizes import topic_count
from embed_assets.lib.settings import SettingError
from embed_assets.lib.store import Space, Store

ERROR, WARN = "ERROR", "WARN"
EXAMPLES = 5  # example ids kept in a check's metadata
ZERO_NORM = 1e-6  # the norm below which a vector counts as zero (as pipeline.vector_problems)
NOTHING: tuple[int, list[str], list[datetime]] = (0, [], [])


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of the checks, from EMBED_ASSETS_CHECK_<NAME>."""

    max_rejected_ratio: float = 0.05
    min_norm: float = 0.01
    max_norm: float = 100.0
    max_age_hours: float = 48.0
    min_recall: float = 0.95  # hnsw_recall passes from here; WARN below
    error_recall: float = 0.85  # ERROR below
    max_cluster_share: float = 0.2  # of all members, in the largest cluster
    recall_queries: int = 30  # stored vectors hnsw_recall searches: ~0.1 s each per 100K vectors

    def __post_init__(self) -> None:
        if not 0 <= self.max_rejected_ratio <= 1:
            raise SettingError(f"{_env_name('max_rejected_ratio')} must be between 0 and 1")
        if not 0 <= self.min_norm < self.max_norm:
            raise SettingError(
                f"{_env_name('min_norm')} must be 0 or more and less than {_env_name('max_norm')}"
            )
        if not self.max_age_hours > 0:
            raise SettingError(f"{_env_name('max_age_hours')} must be a positive number of hours")
        if not 0 <= self.error_recall <= self.min_recall <= 1:
            raise SettingError(
                f"{_env_name('min_recall')} and {_env_name('error_recall')} must be "
                f"recalls between 0 and 1, {_env_name('error_recall')} the lower"
            )
        if not 0 < self.max_cluster_share <= 1:
            raise SettingError(f"{_env_name('max_cluster_share')} must be a share in (0, 1]")
        if self.recall_queries < 1:
            raise SettingError(f"{_env_name('recall_queries')} must be a positive integer")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> QualitySettings:
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(_env_name(f.name), "")
            if raw.strip():
                kind, what = (int, "an integer") if f.type == "int" else (float, "a number")
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    raise SettingError(f"{_env_name(f.name)} must be {what}, got {raw!r}") from None
        return cls(**values)


def _env_name(name: str) -> str:
    return "EMBED_ASSETS_CHECK_" + name.upper()


@dataclass(frozen=True)
class Window:
    """The rows a check looks at: row_time in [start, end). `label` names the partitions (one key,
    `first...last`), or is None for the whole space (a check run outside a partitioned run)."""

    start: datetime = datetime(1, 1, 1, tzinfo=UTC)
    end: datetime = datetime(9999, 12, 31, tzinfo=UTC)
    label: str | None = None


@dataclass(frozen=True)
class Outcome:
    passed: bool
    severity: str
    description: str
    metadata: dict = field(default_factory=dict)


class Scope:
    """What the checks of one evaluation share: the store, the window, the thresholds, the
    embedding spaces, and queries that serve several checks (one scan of the vectors). `instance`
    is whatever a caller's own checks need beside the store (Dagster's instance, for freshness)."""

    def __init__(
        self,
        store: Store,
        window: Window,
        settings: QualitySettings,
        chunk_chars: int = 1500,
        instance: object = None,
    ):
        self.store = store
        self.instance = instance
        self.window = window
        self.settings = settings
        self.chunk_chars = chunk_chars
        self._memo: dict = {}

    def once(self, key: str, compute: Callable[[], object]):
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def space(self) -> Space | None:
        """For the partitioned assets: the space embeddings are written to (after a model
        switch, the new one while it fills)."""
        return self.once("space", self.store.written_space)

    @property
    def active_space(self) -> Space | None:
        """For the cluster index: the space searches use."""
        return self.once("active_space", self.store.active_space)

    def found(self, query: str) -> dict:
        """What `Store.check_<query>(start, end, limit)` finds in the window (memoised)."""
        return self.once(
            query,
            lambda: getattr(self.store, f"check_{query}")(
                self.window.start, self.window.end, EXAMPLES
            ),
        )


def partition_keys(months: list[datetime]) -> list[str]:
    """Monthly partition keys (UTC) of the months holding bad rows."""
    return [m.astimezone(UTC).strftime("%Y-%m-%d") for m in months]


def _outcome(
    scope: Scope,
    failed: tuple[int, list[str], list[datetime]] | None,
    severity: str,
    description: str,
    **counts,
) -> Outcome:
    """An outcome whose metadata says where it looked, how many rows broke the rule and which."""
    count, examples, months = failed or NOTHING
    metadata: dict = {"partitions": scope.window.label or "all", **counts}
    if examples:
        metadata["examples"] = examples
    if months:
        metadata["failing_partitions"] = partition_keys(months)
    return Outcome(passed=count == 0, severity=severity, description=description, metadata=metadata)


def _merge(*found: tuple[int, list[str], list[datetime]]) -> tuple[int, list[str], list[datetime]]:
    return (
        sum(f[0] for f in found),
        sorted(e for f in found for e in f[1])[:EXAMPLES],
        sorted({m for f in found for m in f[2]}),
    )


# -- repositories --------------------------------------------------------------------------------
def rejected_ratio(scope: Scope) -> Outcome:
    rows = scope.store.count_source(scope.window.start, scope.window.end)
    rejected = scope.found("rejected_rows").get("rejected", NOTHING)
    ratio = rejected[0] / rows if rows else 0.0
    limit = scope.settings.max_rejected_ratio
    outcome = _outcome(
        scope,
        rejected,
        ERROR,
        f"{rejected[0]} of {rows} source rows rejected ({ratio:.1%}; at most {limit:.1%} allowed)",
        rejected=rejected[0],
        source_rows=rows,
        ratio=round(ratio, 4),
        max_ratio=limit,
    )
    # Passes on the ratio, not on a count of zero.
    return Outcome(ratio <= limit, ERROR, outcome.description, outcome.metadata)


def required_fields(scope: Scope) -> Outcome:
    found = scope.found("repository_fields")
    bad = _merge(found.get("full_name", NOTHING), found.get("url", NOTHING))
    return _outcome(
        scope,
        bad,
        ERROR,
        f"{bad[0]} repositories lack a valid owner/name or URL"
        if bad[0]
        else "every repository has an owner/name and a URL",
        bad_full_name=found.get("full_name", NOTHING)[0],
        bad_url=found.get("url", NOTHING)[0],
    )


def duplicate_names(scope: Scope) -> Outcome:
    bad = scope.found("duplicate_names").get("duplicate", NOTHING)
    return _outcome(
        scope,
        bad,
        WARN,
        f"{bad[0]} repositories share their name with another up to case"
        if bad[0]
        else "no two repositories share a name",
        duplicates=bad[0],
    )


# -- chunks --------------------------------------------------------------------------------------
def _chunk_texts(scope: Scope) -> dict:
    return scope.once(
        "chunk_texts",
        lambda: scope.store.check_chunk_texts(
            scope.window.start, scope.window.end, scope.chunk_chars, EXAMPLES
        ),
    )


def no_empty_chunks(scope: Scope) -> Outcome:
    bad = _chunk_texts(scope).get("empty", NOTHING)
    return _outcome(
        scope,
        bad,
        ERROR,
        f"{bad[0]} chunks have no text" if bad[0] else "every chunk has text",
        empty=bad[0],
    )


def chunk_sizes(scope: Scope) -> Outcome:
    bad = _chunk_texts(scope).get("oversized", NOTHING)
    return _outcome(
        scope,
        bad,
        WARN,
        f"{bad[0]} chunks are longer than {scope.chunk_chars} characters"
        if bad[0]
        else f"every chunk has 1 to {scope.chunk_chars} characters",
        oversized=bad[0],
        max_chars=scope.chunk_chars,
    )


def repositories_chunked(scope: Scope) -> Outcome:
    bad = scope.found("unchunked_repositories").get("unchunked", NOTHING)
    return _outcome(
        scope,
        bad,
        ERROR,
        f"{bad[0]} repositories have no chunk"
        if bad[0]
        else "every repository has at least one chunk",
        unchunked=bad[0],
    )


# -- embeddings ----------------------------------------------------------------------------------
def _stored(scope: Scope) -> dict:
    space, s = scope.space, scope.settings
    if space is None:
        return {}
    return scope.once(
        "stored_vectors",
        lambda: scope.store.check_stored_vectors(
            space, scope.window.start, scope.window.end, ZERO_NORM, s.min_norm, s.max_norm, EXAMPLES
        ),
    )


def _refused(scope: Scope) -> dict:
    space = scope.space
    if space is None:
        return {}
    return scope.once(
        "refused_vectors",
        lambda: scope.store.check_refused_vectors(
            space, scope.window.start, scope.window.end, EXAMPLES
        ),
    )


def _space_metadata(scope: Scope) -> dict:
    space = scope.space
    return {"space": space.name, "dimensions": space.dimensions} if space else {"space": "none"}


def vector_dimensions(scope: Scope) -> Outcome:
    bad = _stored(scope).get("dimensions", NOTHING)
    dims = scope.space.dimensions if scope.space else 0
    return _outcome(
        scope,
        bad,
        ERROR,
        f"{bad[0]} vectors do not have the space's {dims} dimensions"
        if bad[0]
        else "every vector has the space's dimensions",
        wrong_dimensions=bad[0],
        **_space_metadata(scope),
    )


def _stored_or_refused(scope: Scope, kind: str, what: str) -> Outcome:
    """ERROR when such vectors are stored; WARN when the provider sent some and validation
    refused them before they were stored (the store is clean, the chunks stay pending)."""
    stored = _stored(scope).get(kind, NOTHING)
    refused = _refused(scope).get(kind, NOTHING)
    counts = {"stored": stored[0], "refused": refused[0], **_space_metadata(scope)}
    if stored[0]:
        return _outcome(scope, stored, ERROR, f"{stored[0]} stored vectors are {what}", **counts)
    return _outcome(
        scope,
        refused,
        WARN if refused[0] else ERROR,
        f"the provider returned {refused[0]} vectors that are {what}; they were "
        "refused before being stored"
        if refused[0]
        else f"no vector is {what}",
        **counts,
    )


def finite_vectors(scope: Scope) -> Outcome:
    return _stored_or_refused(scope, "not_finite", "not finite (NaN or inf)")


def no_zero_vectors(scope: Scope) -> Outcome:
    return _stored_or_refused(scope, "zero", "zero")


def vector_norms(scope: Scope) -> Outcome:
    s = scope.settings
    bad = _stored(scope).get("norm", NOTHING)
    return _outcome(
        scope,
        bad,
        ERROR,
        f"{bad[0]} vectors have a norm outside [{s.min_norm:g}, {s.max_norm:g}]"
        if bad[0]
        else f"every vector's norm is within [{s.min_norm:g}, {s.max_norm:g}]",
        out_of_bounds=bad[0],
        min_norm=s.min_norm,
        max_norm=s.max_norm,
        **_space_metadata(scope),
    )


def coverage(scope: Scope) -> Outcome:
    """Every chunk has a vector of its current text in the active space. ERROR when one is
    missing for no recorded reason; WARN when all missing ones were refused (they stay pending and
    the next sync retries them)."""
    space = scope.space
    if space is None:
        chunks = scope.store.count_in_window("chunks", scope.window.start, scope.window.end)
        return Outcome(
            chunks == 0,
            ERROR,
            f"no embedding space yet: {chunks} chunks have no vector",
            {"partitions": scope.window.label or "all", "missing": chunks, "space": "none"},
        )
    found = scope.once(
        "coverage",
        lambda: scope.store.check_coverage(space, scope.window.start, scope.window.end, EXAMPLES),
    )
    missing, refused = found.get("missing", NOTHING), found.get("refused", NOTHING)
    counts = {"missing": missing[0], "refused": refused[0], **_space_metadata(scope)}
    if missing[0]:
        return _outcome(
            scope,
            missing,
            ERROR,
            f"{missing[0]} chunks have no vector and no recorded reason"
            + (f"; {refused[0]} more were refused" if refused[0] else ""),
            **counts,
        )
    return _outcome(
        scope,
        refused,
        WARN if refused[0] else ERROR,
        f"{refused[0]} chunks have no vector: the provider's vector was refused"
        if refused[0]
        else "every chunk has a vector",
        **counts,
    )


def refused_vectors(scope: Scope) -> Outcome:
    """ERROR, but not blocking, when the provider sent vectors that validation refused. The store
    is clean (the checks above only WARN then) and those chunks stay pending, but the provider
    needs a person's look: this is the check that alerts by default."""
    refused = _refused(scope)
    found = _merge(*refused.values()) if refused else NOTHING
    return _outcome(
        scope,
        found,
        ERROR,
        f"the provider returned {found[0]} unusable vectors (NaN, inf or zero); they "
        "were refused and their chunks stay pending"
        if found[0]
        else "the provider returned no unusable vector",
        refused=found[0],
        **_space_metadata(scope),
    )


def no_orphan_vectors(scope: Scope) -> Outcome:
    space = scope.space
    bad = (
        NOTHING
        if space is None
        else scope.once(
            "orphans",
            lambda: scope.store.check_orphan_vectors(
                space, scope.window.start, scope.window.end, EXAMPLES
            ),
        ).get("orphan", NOTHING)
    )
    return _outcome(
        scope,
        bad,
        ERROR,
        f"{bad[0]} vectors belong to no chunk" if bad[0] else "every vector belongs to a chunk",
        orphans=bad[0],
        **_space_metadata(scope),
    )


def freshness(
    newest_partition: str | None,
    materialized_at: float | None,
    settings: QualitySettings,
    now: float | None = None,
) -> Outcome:
    """The newest partition (by key) was materialised within max_age_hours."""
    now = datetime.now(UTC).timestamp() if now is None else now
    limit = settings.max_age_hours
    if newest_partition is None or materialized_at is None:
        return Outcome(False, WARN, "never materialised", {"max_age_hours": limit})
    age = (now - materialized_at) / 3600
    metadata = {
        "newest_partition": newest_partition,
        "age_hours": round(age, 2),
        "max_age_hours": limit,
        "materialized_at": datetime.fromtimestamp(materialized_at, UTC).isoformat(),
    }
    return Outcome(
        age <= limit,
        WARN,
        f"the newest partition, {newest_partition}, was materialised {age:.1f} h ago "
        f"(at most {limit:g} h allowed)",
        metadata,
    )


# -- cluster_index -------------------------------------------------------------------------------
# The cluster index covers the whole active space: these checks ignore the window.
RECALL_K = 10
MIN_MEMBERS_JUDGED = 100  # cluster_sizes judges shares from this many members up
LARGEST_SHOWN = 5


def _no_space(what: str, severity: str = ERROR) -> Outcome:
    return Outcome(True, severity, f"no embedding space yet: {what}", {"space": "none"})


def every_vector_assigned(scope: Scope) -> Outcome:
    """Every repository with a first-chunk vector is in a cluster, unless an operator removed it."""
    space = scope.active_space
    if space is None:
        return _no_space("nothing to assign")
    found = scope.once(
        "cluster_assignment", lambda: scope.store.check_cluster_assignment(space, EXAMPLES)
    )
    kinds = ("unassigned", "unknown_cluster", "stale")
    bad = _merge(*(found.get(kind, NOTHING) for kind in kinds))
    outcome = _outcome(
        scope,
        bad,
        ERROR,
        f"{bad[0]} repositories with a vector are not in a cluster "
        f"({found.get('unassigned', NOTHING)[0]} unassigned, "
        f"{found.get('unknown_cluster', NOTHING)[0]} in a cluster that does not "
        f"exist, {found.get('stale', NOTHING)[0]} assigned by an older vector)"
        if bad[0]
        else "every repository with a vector is in a cluster (or was removed by an operator)",
        **{kind: found.get(kind, NOTHING)[0] for kind in kinds},
        **_space_metadata(scope),
    )
    outcome.metadata.pop("partitions")
    return outcome


def no_empty_clusters(scope: Scope) -> Outcome:
    """No cluster has size 0 or no member, and each cluster's size is its member count."""
    space = scope.active_space
    if space is None:
        return _no_space("no clusters")
    found = scope.once(
        "cluster_members", lambda: scope.store.check_cluster_members(space, EXAMPLES)
    )
    empty, mismatch = found.get("empty", NOTHING), found.get("size_mismatch", NOTHING)
    bad = _merge(empty, mismatch)
    parts = [f"{empty[0]} clusters are empty"] if empty[0] else []
    parts += [f"{mismatch[0]} clusters' sizes are not their member counts"] if mismatch[0] else []
    outcome = _outcome(
        scope,
        bad,
        ERROR,
        "; ".join(parts) or "every cluster has members, as many as its size says",
        empty=empty[0],
        size_mismatch=mismatch[0],
        **_space_metadata(scope),
    )
    outcome.metadata.pop("partitions")
    return outcome


def cluster_sizes(scope: Scope) -> Outcome:
    """The largest cluster holds at most max_cluster_share of all members, or 3/k of them for k
    topic clusters when that is more (judged from MIN_MEMBERS_JUDGED members up): a cluster that
    swallows a large share of everything is a catch-all, or a flood of near-identical rows."""
    space = scope.active_space
    if space is None:
        return _no_space("no clusters", WARN)
    figures = scope.store.cluster_size_figures(space, LARGEST_SHOWN)
    members = figures["members"]
    # Topic clusters have a mean share of 1/k (k = topic_count): in a small collection a cluster of
    # three times that is an ordinary topic, not one that swallows everything.
    limit = max(scope.settings.max_cluster_share, 3 / topic_count(members)) if members else 1.0
    largest = figures["largest"][0][1] if figures["largest"] else 0
    share = largest / members if members else 0.0
    judged = members >= MIN_MEMBERS_JUDGED
    too_big = [
        (cid, size, label)
        for cid, size, label in figures["largest"]
        if judged and size > limit * members
    ]
    metadata = {
        "members": members,
        "clusters": figures["clusters"],
        "singletons": figures["singletons"],
        "largest_size": largest,
        "largest_share": round(share, 4),
        "max_share": limit,
        **_space_metadata(scope),
    }
    if figures["largest"]:
        metadata["largest"] = [
            f"cluster {cid}: {size} members ({size / members:.1%}), {label}"
            for cid, size, label in figures["largest"]
        ]
    if too_big:
        metadata["examples"] = metadata["largest"][: len(too_big)]
        return Outcome(
            False,
            WARN,
            f"{len(too_big)} clusters hold more than {limit:.0%} of the {members} "
            f"members each; the largest, cluster {too_big[0][0]}, {share:.1%}",
            metadata,
        )
    return Outcome(
        True,
        WARN,
        f"the largest cluster holds {share:.1%} of the {members} members (at most "
        f"{limit:.0%} allowed)"
        if judged
        else f"{members} members: too few to judge cluster sizes (from {MIN_MEMBERS_JUDGED})",
        metadata,
    )


def search_recall(store: Store, space: Space, queries: int, k: int = RECALL_K) -> dict:
    """Mean recall@k of searches through the HNSW index (at the store's ef_search) against exact
    search, over `queries` stored vectors picked by a hash of their chunk id (the same sample for
    the same data). Results are repositories (search's best chunk per repository); the query's
    own repository is left out of both lists, since both find it and it would flatter the
    figure. A repository found that scores at least the exact k-th one counts as a hit (a tie).

    Each query costs a scan of every vector for the exact side (~85 ms at 113K 384-d vectors on
    2 cores). Per-query recall varies (standard deviation ~0.1 on the real 24K file), so the mean
    of 30 queries is within ~0.02 of the index's recall.
    """
    began = time.perf_counter()
    recalls: list[float] = []
    worst: list[tuple[float, str]] = []
    for chunk_id, name, vector in store.sample_vectors(space, queries):
        exact = [h for h in store.search(space, vector, k + 1, exact=True) if h[0] != name][:k]
        if not exact:
            continue
        found = [h for h in store.search(space, vector, k + 1) if h[0] != name][:k]
        expected, kth = {h[0] for h in exact}, exact[-1][1]
        hits = sum(1 for h in found if h[0] in expected or h[1] >= kth - 1e-6)
        recalls.append(hits / len(exact))
        worst.append((recalls[-1], chunk_id))
    worst.sort()
    return {
        "recall": float(np.mean(recalls)) if recalls else 1.0,
        "queries": len(recalls),
        "k": k,
        "ef_search": min(max(store.settings.ef_search, 4 * (k + 1)), 1000),  # as set
        # by Store.search for k + 1 results
        "worst": [
            f"{chunk_id}: {recall:.2f}" for recall, chunk_id in worst[:EXAMPLES] if recall < 1
        ],
        "seconds": round(time.perf_counter() - began, 3),
    }


def hnsw_recall(scope: Scope) -> Outcome:
    """Searches through the HNSW index find what exact search finds: recall@10 at least
    min_recall; WARN below it, ERROR below error_recall."""
    space, s = scope.active_space, scope.settings
    if space is None:
        return _no_space("nothing to search")
    found = scope.once("recall", lambda: search_recall(scope.store, space, s.recall_queries))
    recall = found["recall"]
    m, ef_construction = scope.store.index_parameters(space)
    metadata = {
        "recall": round(recall, 4),
        "min_recall": s.min_recall,
        "error_recall": s.error_recall,
        "queries": found["queries"],
        "k": found["k"],
        "ef_search": found["ef_search"],
        "hnsw_m": m,
        "hnsw_ef_construction": ef_construction,
        "seconds": found["seconds"],
        **_space_metadata(scope),
    }
    if found["worst"]:
        metadata["examples"] = found["worst"]
    if recall >= s.min_recall:
        return Outcome(
            True,
            ERROR,
            f"recall@{found['k']} {recall:.3f} over {found['queries']} "
            f"sampled queries (at least {s.min_recall:g} wanted)",
            metadata,
        )
    severity = ERROR if recall < s.error_recall else WARN
    return Outcome(
        False,
        severity,
        f"recall@{found['k']} {recall:.3f} over {found['queries']} sampled queries is "
        f"below {s.error_recall if severity == ERROR else s.min_recall:g}: raise "
        "EMBED_ASSETS_EF_SEARCH, or rebuild the index with a larger "
        "EMBED_ASSETS_HNSW_M / EMBED_ASSETS_HNSW_EF_CONSTRUCTION",
        metadata,
    )


# -- previews ------------------------------------------------------------------------------------
def markdown_table(rows: list[Mapping], max_chars: int = 60) -> str:
    """A Markdown table of a few rows (for materialisation metadata); cells are shortened, and
    pipes and line breaks escaped."""
    if not rows:
        return ""
    columns = list(rows[0])

    def cell(value) -> str:
        text = "" if value is None else str(value)
        text = " ".join(text.split())
        if len(text) > max_chars:
            text = text[: max_chars - 1] + "…"
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
