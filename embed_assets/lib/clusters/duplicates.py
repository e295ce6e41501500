"""Near-duplicate groups, a layer beside the topic clusters: rows whose vectors are at least
`bound` similar (cosine), the customer-message case of one question asked many ways.

Incremental like the cluster index: only rows whose first-chunk vector is new or changed are
compared with the others (the space's HNSW index, or the rows of their group_by value), their old
pairs are replaced, and vanished rows lose theirs. A group is a connected component of the pairs,
named by its smallest key; a `reset` (the full re-cluster) compares every row anew, so a changed
bound applies to all.
"""

from __future__ import annotations

from collections.abc import Iterable

from embed_assets.lib.store import Space, Store


def sync_duplicates(store: Store, space: Space, bound: float, *, reset: bool = False) -> dict:
    if reset:
        store.clear_duplicates(space)
    changed, gone = store.duplicate_changes(space)
    if changed or gone:
        pairs = store.nearest_duplicates(space, changed, bound) if changed else []
        store.write_duplicate_scan(space, changed, gone, pairs)
        store.write_duplicate_groups(space, connected_groups(store.duplicate_pairs(space)))
    return {"duplicate_rows_compared": len(changed)} | store.duplicate_summary(space)


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
