"""What the `cluster_index` asset does to the active embedding space.

Incremental by default: repositories whose vector is new or changed join the topic cluster whose
centroid they are most similar to (or start one when none reaches the threshold), vanished ones
leave, and only the clusters that changed get their figures recomputed from their members' current
vectors (sum, size, label, representative, member similarities, near-duplicates). A full
re-cluster runs when asked, the first time, or when drift since the last full one passes a bound;
it starts from the current centroids and maps old cluster ids onto the new clusters so ids stay
stable, and members an operator removed stay out either way.

Beside the topic clusters, near-duplicate groups (`duplicates.py`) are kept in the same
transaction, at the `near_duplicate` bound.

A collection with a `group_by` column (a tenant) is clustered group by group: a cluster's members
share their group, whichever model or threshold.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from embed_assets.lib.clusters import algorithm as clustering
from embed_assets.lib.clusters.duplicates import sync_duplicates
from embed_assets.lib.clusters.labels import cluster_labels
from embed_assets.lib.store import Space, Store

LABEL_TEXTS = 50  # per cluster, the members nearest its centroid: enough to name it
BACKGROUND_CLUSTERS = 300  # clusters beside the changed ones, so term weights compare widely


def sync_cluster_index(
    store: Store, *, threshold: float, near_duplicate: float, full: bool = False
) -> dict:
    began = time.perf_counter()
    space = store.active_space()
    if space is None:
        return {
            "rows_in": 0,
            "added": 0,
            "updated": 0,
            "unchanged": 0,
            "deleted": 0,
            "row_count": 0,
            "clusters": 0,
            "full": False,
            "seconds": 0.0,
        }
    meta = store.cluster_meta(space)
    changed, gone = store.cluster_changes(space)
    before = store.cluster_assignments(space)
    reason = "asked for" if full else "first clustering" if meta["full_at"] is None else ""
    with store.transaction():
        if reason:
            affected, next_id = _full(store, space, before, meta)
        else:
            affected, next_id = _incremental(store, space, threshold, changed, gone, before, meta)
        figures = refresh_clusters(store, space, affected)
        duplicates = sync_duplicates(store, space, near_duplicate, reset=reason == "asked for")
        summary = clustering.summary(_state(store, space, next_id))
        store.write_cluster_meta(space, next_id, baseline=summary if reason else None)
    if not reason and meta["baseline"]:
        due, why = clustering.needs_full_recluster(clustering.drift(summary, meta["baseline"]))
        if due:
            result = sync_cluster_index(
                store, threshold=threshold, near_duplicate=near_duplicate, full=True
            )
            compared = result["duplicate_rows_compared"] + duplicates["duplicate_rows_compared"]
            return result | {
                "full_reason": why,
                "duplicate_rows_compared": compared,
                "seconds": time.perf_counter() - began,
            }
    after = store.cluster_assignments(space)
    moved = sum(1 for name, cluster in after.items() if name in before and before[name] != cluster)
    return {
        "rows_in": len(after),
        "added": len(after.keys() - before.keys()),
        "updated": moved,
        "unchanged": len(after) - len(after.keys() - before.keys()) - moved,
        "deleted": len(before.keys() - after.keys()),
        "row_count": len(after),
        "clusters": summary["clusters"],
        "singletons": summary["singletons"],
        "clusters_refreshed": figures["refreshed"],
        **duplicates,
        "member_similarity": round(summary["member_similarity"], 4),
        "centroid_similarity": round(summary["centroid_similarity"], 4),
        "full": bool(reason),
        "full_reason": reason,
        "seconds": time.perf_counter() - began,
    }


def _full(store: Store, space: Space, before: dict[str, int], meta: dict) -> tuple[set[int], int]:
    names, hashes, vectors = store.cluster_vectors(space)
    current = _state(store, space, meta["next_id"] or 1)  # re-clustering starts from it
    grouped = store.table_spec is not None and store.table_spec.group_by is not None
    cluster_group = store.cluster_groups(space) if grouped else {}
    labels = np.empty(len(names), np.int64)
    taken = 0  # labels of earlier groups: each group's start after them
    for group, rows in _groups(store, names):
        # The group's own clusters, largest first, are its seeds (all clusters with no group_by).
        mine = np.array([cluster_group.get(int(c)) == group for c in current.ids], bool)
        order = np.argsort(-current.sizes[mine], kind="stable")
        initial = current.centroids[mine][order] if mine.any() else None
        group_labels = clustering.full_cluster(vectors[rows], initial=initial)
        labels[rows] = group_labels + taken
        taken += int(group_labels.max()) + 1 if len(group_labels) else 0
    old_ids = np.array([before.get(name, -1) for name in names], dtype=np.int64)
    ids_of_labels, next_id = clustering.match_ids(old_ids, labels, meta["next_id"] or 1)
    assigned = ids_of_labels[labels] if len(labels) else labels
    store.write_cluster_members(
        space, list(zip(names, hashes, assigned.tolist(), strict=True)), gone=[], replace_all=True
    )
    return set(assigned.tolist()) | set(before.values()), next_id


def _incremental(
    store: Store,
    space: Space,
    threshold: float,
    changed: Sequence[tuple[str, str, np.ndarray]],
    gone: Sequence[str],
    before: dict[str, int],
    meta: dict,
) -> tuple[set[int], int]:
    state = _state(store, space, meta["next_id"] or 1)
    affected = {before[name] for name in gone if name in before}
    affected |= {before[name] for name, _, _ in changed if name in before}
    rows = []
    if changed:
        names = [name for name, _, _ in changed]
        vectors = np.stack([vector for _, _, vector in changed]).astype(np.float32)
        assigned = np.empty(len(changed), np.int64)
        grouped = store.table_spec is not None and store.table_spec.group_by is not None
        cluster_group = store.cluster_groups(space) if grouped else {}
        next_id = state.next_id
        for group, members in _groups(store, names):
            # The clusters this group may join: its own (all of them, with no group_by).
            mask = np.array([cluster_group.get(int(c)) == group for c in state.ids], bool)
            scoped = clustering.ClusterState(
                state.ids[mask],
                state.centroids[mask],
                state.sums[mask],
                state.sizes[mask],
                next_id,
            )
            assigned[members], scoped = clustering.assign(scoped, vectors[members], threshold)
            next_id = scoped.next_id
        affected |= set(assigned.tolist())
        rows = [
            (name, content_hash, int(cluster))
            for (name, content_hash, _), cluster in zip(changed, assigned, strict=True)
        ]
        state.next_id = next_id
    store.write_cluster_members(space, rows, gone, replace_all=False)
    return affected, state.next_id


def _groups(store: Store, keys: Sequence[str]) -> list[tuple[str | None, np.ndarray]]:
    """Each group with the positions of its rows in `keys`, in group order (one group, None,
    of all of them when the collection has no group_by)."""
    if store.table_spec is None or store.table_spec.group_by is None:
        return [(None, np.arange(len(keys)))] if len(keys) else []
    group_of = store.row_groups(keys)
    positions: dict[str | None, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        positions[group_of.get(key)].append(i)
    return [
        (group, np.array(rows, np.int64))
        for group, rows in sorted(positions.items(), key=lambda item: str(item[0]))
    ]


def refresh_clusters(store: Store, space: Space, cluster_ids: Sequence[int] | set[int]) -> dict:
    """Recompute every figure of these clusters from their members' current vectors: sum, size,
    label, representative, mean and per-member similarity. Clusters left without members are
    dropped. (A member's near-duplicates are the duplicate layer's pairs, read with it.)"""
    wanted = sorted(set(cluster_ids))
    contents = store.cluster_contents(space, wanted)
    if not contents:
        store.write_clusters(space, [], [], dropped=wanted)
        return {"refreshed": 0}
    present = sorted({cluster for cluster, _, _, _ in contents})
    row_of = {cluster: i for i, cluster in enumerate(present)}
    labels = np.array([row_of[cluster] for cluster, _, _, _ in contents], dtype=np.int64)
    vectors = np.stack([vector for _, _, vector, _ in contents]).astype(np.float32)
    names = [name for _, name, _, _ in contents]
    sums = np.zeros((len(present), space.dimensions), np.float64)
    np.add.at(sums, labels, vectors)
    sizes = np.bincount(labels, minlength=len(present))
    centroids = _unit(sums)
    similarity = np.einsum("ij,ij->i", vectors, centroids[labels])
    best = clustering.representatives(vectors, labels, centroids)
    nearest: dict[int, list[str]] = defaultdict(list)
    for row in np.lexsort((-similarity, labels)):  # by cluster, most similar first
        if len(nearest[present[labels[row]]]) < LABEL_TEXTS:
            nearest[present[labels[row]]].append(contents[row][3])
    background = store.cluster_label_background(
        space, exclude=wanted, clusters=BACKGROUND_CLUSTERS, per_cluster=LABEL_TEXTS
    )
    sizes_of = {c["cluster_id"]: c["size"] for c in store.list_clusters(space, 1 << 20, 0)}
    sizes_of |= {cluster: int(sizes[i]) for i, cluster in enumerate(present)}
    label_of = cluster_labels(dict(nearest) | background, sizes=sizes_of)
    clusters = [
        {
            "cluster_id": cluster,
            "size": int(sizes[i]),
            "vector_sum": sums[i].astype(np.float32),
            "label": label_of.get(cluster) or names[best[i]],
            "representative": names[best[i]],
            "mean_similarity": float(np.linalg.norm(sums[i]) / sizes[i]),
        }
        for i, cluster in enumerate(present)
    ]
    members = [(name, float(similarity[row])) for row, name in enumerate(names)]
    store.write_clusters(space, clusters, members, dropped=sorted(set(wanted) - set(present)))
    return {"refreshed": len(present)}


def _state(store: Store, space: Space, next_id: int) -> clustering.ClusterState:
    ids, sums, sizes = store.cluster_centroids(space)
    return clustering.ClusterState(ids, _unit(sums), sums.astype(np.float64), sizes, next_id)


def _unit(sums: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.where(norms == 0, 1, norms)).astype(np.float32)
