"""Near-duplicate groups, a layer beside the topic clusters: rows whose vectors are at least
`bound` similar (cosine), the customer-message case of one question asked many ways.

Incremental like the cluster index: only rows whose first-chunk vector is new or changed are
compared with the others (the space's HNSW index, or the rows of their group_by value; past
`BULK_ROWS` of them, as in a first build, the members of their topic cluster, in memory), their
old pairs are replaced, and vanished rows lose theirs. A group is a connected component of the
pairs, named by its smallest key; a `reset` (the full re-cluster) compares every row anew, so a
changed bound applies to all.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from embed_assets.lib.clusters import algorithm as clustering
from embed_assets.lib.store import Space, Store

# Past this many rows to compare, pairs are looked for within the topic clusters (in memory)
# rather than by one index query per row: on the real 24,399-row file the index queries took 133 s
# on a loaded machine, an all-pairs product 31 s, the clusters' members among themselves ~1 s.
BULK_ROWS = 1_000


def sync_duplicates(
    store: Store, space: Space, bound: float, *, reset: bool = False, bulk_rows: int = BULK_ROWS
) -> dict:
    """Bring the groups up to date with the space's vectors (call after the topic clusters are
    written, in the same transaction): figures for the asset's metadata."""
    if reset:
        store.clear_duplicates(space)
    changed, gone = store.duplicate_changes(space)
    if len(changed) > bulk_rows:
        pairs, changed = _within_clusters(store, space, set(changed), bound)
    else:
        pairs = store.nearest_duplicates(space, changed, bound) if changed else []
    if changed or gone:
        store.write_duplicate_scan(space, changed, gone, pairs)
        store.write_duplicate_groups(space, connected_groups(store.duplicate_pairs(space)))
    return {"duplicate_rows_compared": len(changed)} | store.duplicate_summary(space)


def _within_clusters(
    store: Store, space: Space, changed: set[str], bound: float
) -> tuple[list[tuple[str, str, float]], list[str]]:
    """Pairs of the changed rows with the members of their topic cluster, and the rows compared.

    Rows that similar nearly always share their topic cluster; a pair the clusters split is
    missed until one of its rows changes (and is compared through the index). Rows an operator
    took out of the clusters have none: they stay to compare, through the index, next run."""
    names, _, vectors = store.cluster_vectors(space)
    cluster_of = store.cluster_assignments(space)
    rows = np.array([i for i, name in enumerate(names) if name in cluster_of], np.int64)
    ids = np.array([cluster_of[names[i]] for i in rows], np.int64)
    labels = np.unique(ids, return_inverse=True)[1].reshape(-1) if len(ids) else ids
    found = clustering.near_duplicates(vectors[rows], labels, bound) if len(rows) else []
    keys = [names[i] for i in rows]
    pairs = [
        (keys[i], keys[j], similarity)
        for i, j, similarity in found
        if keys[i] in changed or keys[j] in changed
    ]
    return pairs, [key for key in keys if key in changed]


def connected_groups(pairs: Iterable[tuple[str, str, float]]) -> dict[str, str]:
    """The group of every key in a pair: the smallest key of its connected component."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]  # path halving keeps the trees flat
            key = parent[key]
        return key

    for key, other, _ in pairs:
        a, b = root(key), root(other)
        if a != b:
            parent[max(a, b)] = min(a, b)  # the smaller key stays the root: it names the group
    return {key: root(key) for key in parent}
