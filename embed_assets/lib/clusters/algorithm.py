"""Topic clusters of unit vectors: a full clustering at a grain people can browse, incremental
assignment between full ones, and ids that stay stable across them.

Full (`full_cluster`): on neighbour-smoothed vectors (`smoothing.py`), spherical k-means with k
chosen from the number of vectors, k = sqrt(n / 2) (between 2 and `MAX_TOPICS`): tens of clusters
for a few thousand rows, about 110 for the real 24,399-repository file, a few hundred for 100K and
more. Seeds are k-means++ on a sample; Lloyd iterations assign each vector to its most similar
centroid (cosine) and re-normalise the sums, in batches of bounded memory; a cluster left with fewer
than `MIN_SIZE` members is then dissolved into the nearest large ones, so that few rows sit in
clusters too small to read, and one of more than twice the mean size is cut in two, so that no
catch-all holds a large share.

Incremental (`assign`, `remove`): a new vector joins the cluster whose centroid it is most similar
to when that cosine reaches `threshold`, otherwise it starts a cluster (so a burst of rows on a new
subject, or in another script, is kept apart rather than spread over the topics); similar
newcomers of one block found one cluster together. Sums and sizes update exactly (sums are
float64, so that many additions and removals leave no rounding residue), centroids are
re-normalised sums. Incremental assignment never revisits a decision and never changes k: the drift
rule (`needs_full_recluster`) calls for a full clustering when the collection or the cluster count
grew past a bound, or members fit their clusters less well.

Threshold clustering (a vector joins the cluster it is most similar to on average, or starts one,
as before this grain) made 7,432 clusters of the real file, 52 % of its rows in clusters of fewer
than 5: a near-duplicate grain, not topics. Measurements are in docs/benchmarks.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.cluster import MiniBatchKMeans

from embed_assets.lib.clusters.sizes import topic_count
from embed_assets.lib.clusters.smoothing import smoothed

# The cosine to its nearest centroid that a new vector needs to join that cluster. Members of the
# real file's topic clusters are at 0.2-0.45 from their centroid with the offline provider (1st
# and 50th percentiles) and higher with a semantic model: 0.1 keeps apart only what resembles no
# topic at all.
DEFAULT_THRESHOLD = 0.1
MIN_SIZE = 5  # members a full clustering's cluster needs; smaller ones are dissolved
_MAX_OF_MEAN = 2.0  # a full clustering's cluster of more than this times the mean size is cut
_RESTART_VECTORS = 150_000  # see _restarts
_ITERATIONS = 25  # Lloyd iterations at most (they stop earlier once fewer than 0.1 % move)
# k-means++ draws seeds from a sample of this many vectors per cluster (FAISS trains its k-means
# on 39-256 per centroid); the Lloyd iterations over all vectors then place them.
_SEED_SAMPLE = 64
# Scores of a block of vectors against all clusters are computed at once; this bounds that matrix
# (64 MiB of float32) whatever the number of clusters.
_SCORE_ENTRIES = 1 << 24
_MAX_BLOCK = (
    1024  # founders of one block are clustered among themselves with a block × block matrix
)


@dataclass
class ClusterState:
    """Clusters as running sums: row r is cluster `ids[r]`.

    centroids are the unit-normalised sums; sums are float64 so that adding and later removing the
    same vectors returns them to what they were (float32 would drift by ~1e-7 × |sum| per
    update)."""

    ids: np.ndarray  # int64 (k,)
    centroids: np.ndarray  # float32 (k, d)
    sums: np.ndarray  # float64 (k, d)
    sizes: np.ndarray  # int64 (k,)
    next_id: int = 0

    @classmethod
    def empty(cls, dimensions: int, next_id: int = 0) -> ClusterState:
        return cls(
            np.empty(0, np.int64),
            np.empty((0, dimensions), np.float32),
            np.empty((0, dimensions), np.float64),
            np.empty(0, np.int64),
            next_id,
        )

    @classmethod
    def from_labels(
        cls,
        vectors: np.ndarray,
        labels: np.ndarray,
        ids: np.ndarray | None = None,
        next_id: int | None = None,
        *,
        batch_size: int = 65_536,
    ) -> ClusterState:
        """The state of a full clustering: labels are 0..k-1 (as `full_cluster` returns them), ids
        the stable id of each label (as `match_ids` returns them; default: the labels)."""
        vectors, labels = _check(vectors), np.asarray(labels, np.int64)
        k = int(labels.max()) + 1 if labels.size else 0
        ids = np.arange(k, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
        if len(ids) != k:
            raise ValueError(f"{len(ids)} ids for {k} labels")
        sums = _label_sums(labels, vectors, k, batch_size=batch_size)
        sizes = np.bincount(labels, minlength=k).astype(np.int64)
        if (sizes == 0).any():
            raise ValueError("labels must be 0..k-1 with every label used")
        if next_id is None:
            next_id = int(ids.max()) + 1 if k else 0
        return cls(ids, _normalise(sums), sums, sizes, next_id)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dimensions(self) -> int:
        return self.centroids.shape[1]

    def rows_of(self, cluster_ids: np.ndarray) -> np.ndarray:
        """The row of each cluster id; ValueError for an id that is not here."""
        cluster_ids = np.asarray(cluster_ids, np.int64)
        order = np.argsort(self.ids, kind="stable")
        pos = np.searchsorted(self.ids[order], cluster_ids).clip(max=max(len(order) - 1, 0))
        found = (
            (self.ids[order[pos]] == cluster_ids)
            if len(order)
            else np.zeros(len(cluster_ids), bool)
        )
        if not found.all():
            raise ValueError(f"unknown cluster id {int(cluster_ids[~found][0])}")
        return order[pos]


class _Working:
    """A mutable copy of a state, with room to grow, for the loops of `assign` and
    `full_cluster`."""

    def __init__(self, state: ClusterState) -> None:
        k, d = state.sums.shape
        capacity = k + max(_MAX_BLOCK, k // 8)  # room for a few blocks of founders before growing
        self.count = k
        self.sums = np.zeros((capacity, d), np.float64)
        self.centroids = np.zeros((capacity, d), np.float32)
        self.sizes = np.zeros(capacity, np.int64)
        self.sums[:k], self.centroids[:k], self.sizes[:k] = state.sums, state.centroids, state.sizes

    def best(self, block: np.ndarray, threshold: float) -> np.ndarray:
        """Row of the cluster each vector joins (the most similar centroid), -1 where it is less
        similar than the threshold."""
        rows = np.full(len(block), -1, np.int64)
        if self.count:
            scores = block @ self.centroids[: self.count].T
            best = scores.argmax(axis=1)
            joins = scores[np.arange(len(block)), best] >= threshold
            rows[joins] = best[joins]
        return rows

    def add(self, block: np.ndarray, rows: np.ndarray) -> None:
        """Add the vectors to their rows; rows from `count` upwards are new clusters."""
        new_count = max(self.count, int(rows.max()) + 1 if rows.size else 0)
        if new_count > len(self.sizes):
            self._grow(new_count)
        self.count = new_count
        self._update(block, rows, 1)

    def remove(self, block: np.ndarray, rows: np.ndarray) -> None:
        self._update(block, rows, -1)
        if (self.sizes[: self.count] < 0).any():
            raise ValueError("more members removed from a cluster than it has")

    def state(self, ids: np.ndarray, next_id: int) -> ClusterState:
        """The state of the non-empty clusters, whose ids are ids[row]."""
        keep = np.flatnonzero(self.sizes[: self.count] > 0)
        return ClusterState(
            ids[keep], self.centroids[keep], self.sums[keep], self.sizes[keep], next_id
        )

    def _update(self, block: np.ndarray, rows: np.ndarray, sign: int) -> None:
        touched, local = np.unique(rows, return_inverse=True)
        delta = _label_sums(local, block, len(touched))
        self.sums[touched] += delta if sign > 0 else -delta
        np.add.at(self.sizes, rows, sign)
        self._refresh(touched)

    def _refresh(self, rows: np.ndarray) -> None:
        sums = self.sums[rows]
        norms = np.linalg.norm(sums, axis=1)
        self.centroids[rows] = sums / np.where(norms > 0, norms, 1)[:, None]

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * len(self.sizes))
        for name in ("sums", "centroids", "sizes"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)


def assign(
    state: ClusterState, vectors: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> tuple[np.ndarray, ClusterState]:
    """Incremental clustering: the cluster id each unit vector joins, and the new state.

    Vectors are taken in blocks. Each vector of a block joins the cluster of its most similar
    centroid when that cosine reaches the threshold; the others are clustered among themselves in
    input order (joining the new cluster they are most similar to on average, at the same
    threshold), so similar new vectors end in one new cluster. Later blocks see the clusters of
    earlier ones. Deterministic; `state` is left unchanged."""
    vectors = _check(vectors, state.dimensions)
    work = _Working(state)
    rows = np.empty(len(vectors), np.int64)
    start = 0
    while start < len(vectors):
        part = slice(start, start + _block_size(work.count))
        rows[part] = _assign_block(work, vectors[part], threshold)
        start = part.stop
    first_new = len(state)
    ids = np.concatenate(
        [state.ids, np.arange(work.count - first_new, dtype=np.int64) + state.next_id]
    )
    return ids[rows], work.state(ids, state.next_id + work.count - first_new)


def remove(state: ClusterState, vectors: np.ndarray, cluster_ids: np.ndarray) -> ClusterState:
    """Members leave their clusters: `vectors` as they were when they joined, `cluster_ids` the
    cluster each was in. Clusters left empty disappear; `state` is left unchanged."""
    vectors = _check(vectors, state.dimensions)
    rows = state.rows_of(cluster_ids)
    if len(rows) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors but {len(rows)} cluster ids")
    work = _Working(state)
    if len(rows):
        work.remove(vectors, rows)
    return work.state(state.ids, state.next_id)


def _assign_block(work: _Working, block: np.ndarray, threshold: float) -> np.ndarray:
    rows = work.best(block, threshold)
    founders = np.flatnonzero(rows < 0)
    rows[founders] = work.count + _leader(block[founders], threshold)
    work.add(block, rows)
    return rows


def _leader(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Sequential threshold clustering of a few vectors among themselves: labels 0..m-1.

    totals[c, i] is the sum of vector i's cosines to the members of cluster c so far, so the
    average cosine to a cluster costs one division instead of a dot product."""
    m = len(vectors)
    similarity = vectors @ vectors.T
    totals = np.zeros((m, m), np.float32)
    sizes = np.zeros(m, np.int64)
    labels = np.empty(m, np.int64)
    count = 0
    for i in range(m):
        if count:
            averages = totals[:count, i] / sizes[:count]
            best = int(averages.argmax())
            if averages[best] >= threshold:
                labels[i] = best
                sizes[best] += 1
                totals[best] += similarity[i]
                continue
        labels[i], sizes[count], totals[count] = count, 1, similarity[i]
        count += 1
    return labels


def full_cluster(
    vectors: np.ndarray,
    *,
    initial: np.ndarray | None = None,
    seed: int = 0,
    min_size: int = MIN_SIZE,
    batch_size: int = 65_536,
) -> np.ndarray:
    """Cluster all unit vectors anew: a label 0..k-1 per vector (see the module docstring).

    `initial`: centroids to start from, most wanted first (a re-clustering passes the current
    clusters' centroids, largest first): the first k of them are the first seeds, so that a
    re-clustering of data that barely changed finds the clusters it had (k-means from fresh seeds
    lands elsewhere, and the ids `match_ids` keeps would be lost). Memory: the input, a label per
    vector, k centroids and score blocks of at most `batch_size` vectors. Deterministic for a
    given seed, input and `initial`."""
    vectors = smoothed(_check(vectors))
    if len(vectors) == 0:
        return np.empty(0, np.int64)
    k = topic_count(len(vectors))
    if initial is not None and len(initial):  # one start, from the clusters as they are: ids stay
        starts = [_check(initial[:k], vectors.shape[1])]
    else:
        starts = [np.empty((0, vectors.shape[1]), np.float32)] * _restarts(len(vectors))
    best, best_score = None, -np.inf
    for i, start in enumerate(starts):
        labels, centroids, score = _lloyd(vectors, _seeds(vectors, start, k, seed + i), batch_size)
        if score > best_score:
            best, best_score = (labels, centroids), score
    labels = _dissolve_small(vectors, *best, min_size, batch_size)
    labels = _split_large(vectors, labels, k, seed, batch_size)
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def _restarts(n: int) -> int:
    """Seedings to try (the best is kept): k-means lands in a different local optimum per seeding,
    and on the weak-label evaluation the seeding with the highest objective had the best AMI.
    Three while that costs at most ~150K vectors' worth of iterations, one beyond."""
    return max(1, min(3, _RESTART_VECTORS // n))


def _lloyd(
    vectors: np.ndarray, centroids: np.ndarray, batch_size: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Spherical k-means from these centroids: labels, centroids and the objective (the sum of
    members' cosines to their centroids, which is the sum of the norms of the clusters' sums)."""
    k = len(centroids)
    labels = _nearest(vectors, centroids, batch_size)
    for _ in range(_ITERATIONS):
        # float32 sums: the exact float64 ones (`_label_sums`) are for states, not for iterating.
        sums = (
            sparse.csr_matrix(
                (np.ones(len(labels), np.float32), (labels, np.arange(len(labels)))),
                shape=(k, len(labels)),
            )
            @ vectors
        )
        used = np.bincount(labels, minlength=k) > 0
        centroids[used] = _normalise(sums[used])  # an emptied cluster keeps its last centroid
        moved, labels = labels, _nearest(vectors, centroids, batch_size)
        if (moved != labels).mean() < 1e-3:
            break
    sums = _label_sums(labels, vectors, k, batch_size=batch_size)
    return labels, centroids, float(np.linalg.norm(sums, axis=1).sum())


def _seeds(vectors: np.ndarray, start: np.ndarray, k: int, seed: int) -> np.ndarray:
    """`start` and more unit centroids up to k, by greedy k-means++ (the best of 2 + ln k
    candidates per step, as scikit-learn draws them) over a sample: spread over the data,
    deterministic. Distances of unit vectors come from dot products (|a - b|² = 2 - 2 a·b), in
    float32: scikit-learn's own `kmeans_plusplus` upcasts to float64 in small chunks and took 17 s
    for 110 seeds of 24K."""
    rng = np.random.default_rng(seed)
    sample = vectors
    if len(vectors) > _SEED_SAMPLE * k:
        sample = vectors[np.sort(rng.choice(len(vectors), _SEED_SAMPLE * k, replace=False))]
    seeds = [*start] if len(start) else [sample[int(rng.integers(len(sample)))]]
    closest = np.maximum(2 - 2 * (sample @ np.array(seeds).T).max(axis=1), 0)
    trials = 2 + int(math.log(k))
    while len(seeds) < k:
        weights = np.cumsum(closest, dtype=np.float64)
        if weights[-1] <= 0:  # fewer distinct vectors than k: any further seed is a repeat
            seeds.append(sample[int(rng.integers(len(sample)))])
            continue
        candidates = np.searchsorted(weights, rng.random(trials) * weights[-1]).clip(
            max=len(sample) - 1
        )
        distances = np.minimum(np.maximum(2 - 2 * (sample[candidates] @ sample.T), 0), closest)
        best = int(distances.sum(axis=1).argmin())
        seeds.append(sample[candidates[best]])
        closest = distances[best]
    return _normalise(np.array(seeds, np.float32))


def _split_large(
    vectors: np.ndarray, labels: np.ndarray, k: int, seed: int, batch_size: int
) -> np.ndarray:
    """Clusters of more than `_MAX_OF_MEAN` times the mean size are cut in two by 2-means among
    their members, largest first: k-means leaves catch-alls (on the real file, 1,163 rows of short
    generic JavaScript and HTML descriptions), which no one browses."""
    labels = labels.copy()
    limit = _MAX_OF_MEAN * len(vectors) / k
    no_seeds = np.empty((0, vectors.shape[1]), np.float32)
    for _ in range(k):  # bounded: each cut adds a cluster
        sizes = np.bincount(labels)
        largest = int(sizes.argmax())
        if sizes[largest] <= limit:
            break
        members = np.flatnonzero(labels == largest)
        part = vectors[members]
        halves, _, _ = _lloyd(part, _seeds(part, no_seeds, 2, seed), batch_size)
        if halves.min() == halves.max():  # identical rows: nothing to cut
            break
        labels[members[halves == 1]] = len(sizes)
    return labels


def _dissolve_small(
    vectors: np.ndarray, labels: np.ndarray, centroids: np.ndarray, min_size: int, batch_size: int
) -> np.ndarray:
    """Members of clusters smaller than `min_size` move to their most similar large cluster (all
    stay as they are when no cluster is that large)."""
    sizes = np.bincount(labels, minlength=len(centroids))
    large = np.flatnonzero(sizes >= min_size)
    small = np.flatnonzero(np.isin(labels, np.flatnonzero(sizes < min_size)))
    if not len(large) or not len(small):
        return labels
    labels = labels.copy()
    labels[small] = large[_nearest(vectors[small], centroids[large], batch_size)]
    return labels


def _cell_centres(vectors: np.ndarray, cell_size: int, seed: int) -> np.ndarray:
    """Unit centres of about N / cell_size cells, from MiniBatchKMeans on a sample.

    A sample of 256 per cell (at least 20,000) places centres as well as the whole set does for this
    purpose (FAISS trains its coarse quantisers on 30-256 per centre), and bounds time and
    memory."""
    cells = math.ceil(len(vectors) / cell_size)
    if cells <= 1:
        return np.zeros((1, vectors.shape[1]), np.float32)
    rng = np.random.default_rng(seed)
    sample_size = min(len(vectors), max(256 * cells, 20_000))
    sample = vectors[np.sort(rng.choice(len(vectors), sample_size, replace=False))]
    kmeans = MiniBatchKMeans(cells, random_state=seed, n_init=3, batch_size=4096, max_iter=50)
    return _normalise(kmeans.fit(sample).cluster_centers_).astype(np.float32)


def _nearest(vectors: np.ndarray, centres: np.ndarray, batch_size: int) -> np.ndarray:
    """The most similar centre of each vector."""
    nearest = np.zeros(len(vectors), np.int64)
    for start in range(0, len(vectors), batch_size):
        nearest[start : start + batch_size] = (
            vectors[start : start + batch_size] @ centres.T
        ).argmax(axis=1)
    return nearest


def _members_by_cell(cell: np.ndarray, cells: int) -> list[np.ndarray]:
    order = np.argsort(cell, kind="stable")  # within a cell, members keep their input order
    return np.split(order, np.cumsum(np.bincount(cell, minlength=cells))[:-1])


def match_ids(old_ids: np.ndarray, new_labels: np.ndarray, next_id: int) -> tuple[np.ndarray, int]:
    """Stable ids for a re-clustering: `ids[label]` for each new label, and the next free id.

    Per member: `old_ids[i]` is the cluster id it had (-1 for a member that had none) and
    `new_labels[i]` its label from `full_cluster`. A new cluster keeps the old id that more than
    half of its previously clustered members had (so an id never passes to a cluster made mostly of
    other clusters' members); when an old cluster splits, the part with most of its members keeps
    the id (ties: the lower label). Other new clusters get fresh ids from `next_id`, in label order;
    an id that disappears is never reused."""
    old_ids, new_labels = np.asarray(old_ids, np.int64), np.asarray(new_labels, np.int64)
    if old_ids.shape != new_labels.shape:
        raise ValueError(f"{len(old_ids)} old ids but {len(new_labels)} new labels")
    k = int(new_labels.max()) + 1 if new_labels.size else 0
    ids = np.full(k, -1, np.int64)
    known = old_ids >= 0
    if known.any():
        next_id = max(next_id, int(old_ids.max()) + 1)
        pairs, overlap = np.unique(
            np.stack([new_labels[known], old_ids[known]], axis=1), axis=0, return_counts=True
        )
        clustered_before = np.bincount(new_labels[known], minlength=k)
        majority = 2 * overlap > clustered_before[pairs[:, 0]]
        pairs, overlap = pairs[majority], overlap[majority]
        order = np.lexsort(
            (pairs[:, 0], -overlap, pairs[:, 1])
        )  # per old id: largest overlap first
        first = np.r_[True, pairs[order[1:], 1] != pairs[order[:-1], 1]]
        ids[pairs[order[first], 0]] = pairs[order[first], 1]
    fresh = np.flatnonzero(ids < 0)
    ids[fresh] = next_id + np.arange(len(fresh))
    return ids, next_id + len(fresh)


def summary(state: ClusterState) -> dict[str, float]:
    """Figures for drift and metadata, exact from the sums.

    centroid_similarity: members' mean cosine to their centroid (a cluster's members sum to `sums`,
    so theirs is |sum| in total). It falls as clusters grow, even when they stay as tight.
    member_similarity: members' mean cosine to the other members of their cluster (singletons left
    out), the quantity the threshold bounds: (|sum|² - size) / (size - 1) in total per cluster. It
    does not depend on cluster size, so it is the one to watch for drift."""
    sizes, squares = state.sizes, np.einsum("ij,ij->i", state.sums, state.sums)
    members, pairs = int(sizes.sum()), sizes > 1
    paired = int(sizes[pairs].sum())
    return {
        "clusters": len(state),
        "members": members,
        "singletons": int((sizes == 1).sum()),
        "centroid_similarity": float(np.sqrt(squares).sum() / members) if members else 1.0,
        "member_similarity": float(
            ((squares[pairs] - sizes[pairs]) / (sizes[pairs] - 1)).sum() / paired
        )
        if paired
        else 1.0,
    }


def drift(
    current: ClusterState | Mapping[str, float], baseline: Mapping[str, float]
) -> dict[str, float]:
    """How the index moved since the last full clustering, whose `summary` is `baseline`."""
    now = summary(current) if isinstance(current, ClusterState) else current
    return {
        "cluster_growth": now["clusters"] / max(baseline["clusters"], 1) - 1,
        "member_growth": now["members"] / max(baseline["members"], 1) - 1,
        "similarity_drop": baseline["member_similarity"] - now["member_similarity"],
    }


def needs_full_recluster(
    drifted: Mapping[str, float],
    *,
    max_cluster_growth: float = 0.25,
    max_member_growth: float = 0.5,
    max_similarity_drop: float = 0.02,
) -> tuple[bool, str]:
    """Whether `drift` calls for a full re-clustering, and why.

    Incremental assignment never revisits a decision and never changes k, which a full clustering
    chooses from the collection's size: so re-cluster when the number of members grew (or shrank)
    by more than half (k would move by a fifth or more), when the clusters newcomers founded grew
    their count by more than a quarter, or when members' mean cosine to the other members of their
    cluster fell by more than 0.02 (newcomers that fit their topics less well than its members
    did)."""
    if abs(drifted.get("member_growth", 0.0)) > max_member_growth:
        return True, (
            f"member count changed by {drifted['member_growth']:+.0%} (limit "
            f"{max_member_growth:.0%})"
        )
    if drifted["cluster_growth"] > max_cluster_growth:
        return (
            True,
            f"cluster count grew by {drifted['cluster_growth']:.0%} (limit "
            f"{max_cluster_growth:.0%})",
        )
    if drifted["similarity_drop"] > max_similarity_drop:
        return True, (
            f"mean member similarity fell by {drifted['similarity_drop']:.3f} "
            f"(limit {max_similarity_drop})"
        )
    return False, "within bounds"


def mean_similarity(
    vectors: np.ndarray, labels: np.ndarray, centroids: np.ndarray, *, batch_size: int = 65_536
) -> float:
    """Mean cosine of each vector to its cluster's centroid (labels are rows of `centroids`)."""
    similarity = _similarity_to_centroids(
        _check(vectors), np.asarray(labels), centroids, batch_size
    )
    return float(similarity.mean()) if similarity.size else 1.0


def representatives(
    vectors: np.ndarray, labels: np.ndarray, centroids: np.ndarray, *, batch_size: int = 65_536
) -> np.ndarray:
    """For each centroid row, the index of its member closest to it (-1 for none); ties: lower
    index."""
    labels = np.asarray(labels, np.int64)
    similarity = _similarity_to_centroids(_check(vectors), labels, centroids, batch_size)
    best = np.full(len(centroids), -1, np.int64)
    order = np.lexsort((-similarity, labels))  # by label, most similar first
    first = (
        np.r_[True, labels[order[1:]] != labels[order[:-1]]] if len(order) else order.astype(bool)
    )
    best[labels[order[first]]] = order[first]
    return best


def near_duplicates(
    vectors: np.ndarray,
    labels: np.ndarray,
    threshold: float = 0.95,
    *,
    per_member: int = 10,
    max_group: int = 10_000,
    seed: int = 0,
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cosine) with i < j, in the same cluster, at least `threshold` similar.

    Work is bounded: members are compared in blocks within their cluster (memory ≤ 64 MiB of
    scores), and a cluster larger than `max_group` is first cut into cells of about that size by
    MiniBatchKMeans, since vectors that similar share a nearest centre (rows it cannot separate,
    such
    as thousands of near-identical ones, are cut into slices in order). Output is bounded too: each
    member keeps its `per_member` most similar later members (ties: the lower index), so a group of
    m
    identical rows gives about 10 m pairs, not m²/2, and stays connected."""
    vectors, labels = _check(vectors), np.asarray(labels, np.int64)
    pairs: list[tuple[int, int, float]] = []
    for group in _members_by_cell(labels, int(labels.max()) + 1 if labels.size else 0):
        for part in _groups_of_at_most(vectors, group, max_group, seed):
            pairs.extend(_duplicates_within(vectors, np.sort(part), threshold, per_member))
    return sorted(pairs)


def _groups_of_at_most(
    vectors: np.ndarray, members: np.ndarray, size: int, seed: int
) -> list[np.ndarray]:
    if len(members) <= size:
        return [members] if len(members) > 1 else []
    cells = _members_by_cell(
        _nearest(vectors[members], _cell_centres(vectors[members], size, seed), size),
        math.ceil(len(members) / size),
    )
    if max(map(len, cells)) > 0.9 * len(
        members
    ):  # k-means cannot split them (near-identical): slices
        cells = [
            np.arange(start, min(start + size, len(members)))
            for start in range(0, len(members), size)
        ]
    return [
        part for cell in cells for part in _groups_of_at_most(vectors, members[cell], size, seed)
    ]


def _duplicates_within(
    vectors: np.ndarray, members: np.ndarray, threshold: float, per_member: int
) -> list[tuple[int, int, float]]:
    found = []
    rows_per_block = max(1, min(_MAX_BLOCK, _SCORE_ENTRIES // len(members)))
    for start in range(0, len(members), rows_per_block):
        rows = members[start : start + rows_per_block]
        similarity = vectors[rows] @ vectors[members[start:]].T  # later members only
        i, j = np.nonzero(similarity >= threshold)
        keep = j > i  # j indexes from start, i within the block: j > i means a later member
        i, j = i[keep], j[keep]
        s = similarity[i, j]
        order = np.lexsort((j, -s, i))  # per row: most similar first, then lower index
        i, j, s = i[order], j[order], s[order]
        rank = np.arange(len(i)) - np.searchsorted(i, i)  # position within its row's run
        keep = rank < per_member
        found.extend(
            zip(
                rows[i[keep]].tolist(),
                members[start + j[keep]].tolist(),
                s[keep].tolist(),
                strict=True,
            )
        )
    return found


def _similarity_to_centroids(
    vectors: np.ndarray, labels: np.ndarray, centroids: np.ndarray, batch_size: int
) -> np.ndarray:
    similarity = np.empty(len(vectors), np.float32)
    for start in range(0, len(vectors), batch_size):
        part = slice(start, start + batch_size)
        similarity[part] = np.einsum("ij,ij->i", vectors[part], centroids[labels[part]])
    return similarity


def _block_size(clusters: int) -> int:
    """Vectors per block, so that their scores against `clusters` clusters stay within bounds."""
    return int(min(_MAX_BLOCK, max(64, _SCORE_ENTRIES // max(clusters, 1))))


def _label_sums(
    labels: np.ndarray,
    vectors: np.ndarray,
    k: int,
    rows: np.ndarray | None = None,
    batch_size: int = 65_536,
) -> np.ndarray:
    """float64 (k, d): the sum of each label's vectors (the vectors are `vectors[rows]` when rows
    are
    given), by sparse one-hot products over batches, so that no float64 copy of all is made."""
    sums = np.zeros((k, vectors.shape[1]), np.float64)
    for start in range(0, len(labels), batch_size):
        part = slice(start, start + batch_size)
        block = vectors[part] if rows is None else vectors[rows[part]]
        one_hot = sparse.csr_matrix(
            (np.ones(len(block)), (labels[part], np.arange(len(block)))), shape=(k, len(block))
        )
        sums += one_hot @ block.astype(np.float64)
    return sums


def _normalise(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.where(norms > 0, norms, 1)).astype(np.float32)


def _check(vectors: np.ndarray, dimensions: int | None = None) -> np.ndarray:
    """float32 2-D vectors (a view when they are already), of the expected dimensions."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or (dimensions is not None and vectors.shape[1] != dimensions):
        raise ValueError(f"expected vectors of shape (n, {dimensions or 'd'}), got {vectors.shape}")
    return vectors
