from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score
from sklearn.metrics.cluster import contingency_matrix

from embed_assets.lib.clusters import algorithm as clustering
from embed_assets.lib.clusters.algorithm import (
    ClusterState,
    assign,
    drift,
    full_cluster,
    match_ids,
    mean_similarity,
    near_duplicates,
    needs_full_recluster,
    remove,
    representatives,
    summary,
)
from embed_assets.lib.clusters.labels import cluster_labels, label_terms
from embed_assets.lib.clusters.sizes import MAX_TOPICS, topic_count
from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets.lib.sample import generate_repositories
from embed_assets.lib.text import repository_text


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def blobs(centres: int, per: int, member_cos: float = 0.8, d: int = 64, seed: int = 0):
    """Unit vectors around random centres, cos(member, centre) ≈ member_cos; shuffled."""
    rng = np.random.default_rng(seed)
    truth = rng.permutation(np.repeat(np.arange(centres), per))
    middle = unit(rng.standard_normal((centres, d)))
    noise = np.sqrt((1 / member_cos**2 - 1) / d)
    return unit(middle[truth] + noise * rng.standard_normal((len(truth), d))), truth


def recomputed(vectors: np.ndarray, ids: np.ndarray) -> dict[int, tuple[np.ndarray, int]]:
    return {
        int(i): (vectors[ids == i].astype(np.float64).sum(axis=0), int((ids == i).sum()))
        for i in np.unique(ids)
    }


def assert_state_matches(state: ClusterState, vectors: np.ndarray, ids: np.ndarray) -> None:
    expected = recomputed(vectors, ids)
    assert sorted(state.ids.tolist()) == sorted(expected)
    for row, cluster in enumerate(state.ids.tolist()):
        total, size = expected[cluster]
        assert state.sizes[row] == size
        np.testing.assert_allclose(state.sums[row], total, atol=1e-9)
        np.testing.assert_allclose(state.centroids[row], total / np.linalg.norm(total), atol=1e-6)


def test_assign_and_remove_keep_sums_sizes_and_centroids_exact():
    vectors, _ = blobs(8, 30)
    state = ClusterState.empty(vectors.shape[1])
    ids = []
    for part in np.array_split(vectors, 5):
        part_ids, state = assign(state, part, threshold=0.5)
        ids.append(part_ids)
    ids = np.concatenate(ids)
    assert_state_matches(state, vectors, ids)
    assert state.next_id == len(np.unique(ids)) and state.sizes.dtype == np.int64

    leaving = np.arange(0, len(vectors), 3)
    after = remove(state, vectors[leaving], ids[leaving])
    staying = np.setdiff1d(np.arange(len(vectors)), leaving)
    assert_state_matches(after, vectors[staying], ids[staying])
    assert_state_matches(state, vectors, ids)  # the input state is left as it was

    empty = remove(after, vectors[staying], ids[staying])
    assert len(empty) == 0 and empty.next_id == state.next_id  # ids are never reused


def test_remove_refuses_unknown_ids_and_too_many_members():
    vectors, _ = blobs(2, 5)
    ids, state = assign(ClusterState.empty(vectors.shape[1]), vectors, threshold=0.5)
    with pytest.raises(ValueError, match="unknown cluster id"):
        remove(state, vectors[:1], [state.next_id + 5])
    with pytest.raises(ValueError, match="more members"):
        remove(state, np.concatenate([vectors, vectors]), np.concatenate([ids, ids]))


def test_a_vector_joins_when_its_cosine_to_the_centroid_reaches_the_threshold():
    # Members e1 and e2: their centroid is (e1 + e2)/√2, and e1 + e2 + e3 is at cosine 0.816 to it.
    members = np.eye(4, dtype=np.float32)[:2]
    state = ClusterState.from_labels(members, np.array([0, 0]), ids=np.array([7]))
    v = unit([[1, 1, 1, 0]])
    assert assign(state, v, threshold=0.81)[0].tolist() == [7]
    ids, grown = assign(state, v, threshold=0.82)
    assert ids.tolist() == [8] and grown.next_id == 9 and sorted(grown.ids.tolist()) == [7, 8]


def test_similar_new_vectors_of_one_batch_found_one_new_cluster():
    rng = np.random.default_rng(1)
    old, _ = blobs(3, 10, seed=2)
    ids, state = assign(ClusterState.empty(old.shape[1]), old, threshold=0.5)
    far = unit(rng.standard_normal((1, old.shape[1])))
    batch = unit(np.concatenate([far + 0.05 * rng.standard_normal((4, old.shape[1])), old[:2]]))
    new_ids, _ = assign(state, batch, threshold=0.5)
    assert len(set(new_ids[:4].tolist())) == 1 and new_ids[0] >= state.next_id
    assert new_ids[4:].tolist() == ids[:2].tolist()


def test_assign_is_deterministic_and_handles_more_vectors_than_one_block(monkeypatch):
    monkeypatch.setattr(clustering, "_MAX_BLOCK", 16)
    vectors, _ = blobs(5, 40, seed=3)
    first = assign(ClusterState.empty(vectors.shape[1]), vectors, threshold=0.5)
    second = assign(ClusterState.empty(vectors.shape[1]), vectors, threshold=0.5)
    assert np.array_equal(first[0], second[0])
    assert_state_matches(first[1], vectors, first[0])
    assert len(first[1]) == 5  # later blocks join the clusters that earlier blocks founded


def test_full_cluster_recovers_well_separated_blobs():
    vectors, truth = blobs(25, 50, seed=4)  # 1,250 vectors: k = sqrt(1250 / 2) = 25
    assert topic_count(len(vectors)) == 25
    labels = full_cluster(vectors)
    assert adjusted_rand_score(truth, labels) > 0.99
    assert (
        labels.dtype == np.int64
        and labels.min() == 0
        and labels.max() == len(np.unique(labels)) - 1
    )
    assert np.array_equal(labels, full_cluster(vectors))


def test_full_cluster_in_small_batches_and_from_a_sample_still_recovers_blobs(monkeypatch):
    vectors, truth = blobs(25, 50, seed=5)
    labels = full_cluster(vectors)
    assert adjusted_rand_score(labels, full_cluster(vectors, batch_size=64)) > 0.99
    monkeypatch.setattr(clustering, "_SEED_SAMPLE", 16)  # seeds from a sample, not all vectors
    assert adjusted_rand_score(truth, full_cluster(vectors, batch_size=64)) > 0.9


def test_k_grows_with_the_square_root_of_n_within_bounds():
    assert [topic_count(n) for n in (1, 3, 50, 2_767, 24_399, 100_000)] == [1, 2, 5, 37, 110, 224]
    assert topic_count(10**8) == MAX_TOPICS


def test_clusters_smaller_than_the_minimum_are_dissolved_into_the_nearest_large_ones():
    vectors, _ = blobs(6, 40, member_cos=0.7, d=32, seed=12)
    rng = np.random.default_rng(12)
    strays = unit(rng.standard_normal((1, 32)) + 0.05 * rng.standard_normal((3, 32)))  # far off
    labels = full_cluster(np.concatenate([vectors, strays]))
    sizes = np.bincount(labels)
    assert sizes.min() >= clustering.MIN_SIZE and len(sizes) <= topic_count(len(labels))
    kept = full_cluster(np.concatenate([vectors, strays]), min_size=1)
    assert np.bincount(kept).min() < clustering.MIN_SIZE  # the strays made a cluster of their own


def test_a_re_clustering_from_the_current_centroids_finds_the_same_clusters():
    vectors, _ = blobs(10, 30, member_cos=0.6, d=32, seed=13)  # loose: seeds matter
    labels = full_cluster(vectors)
    state = ClusterState.from_labels(vectors, labels)
    initial = state.centroids[np.argsort(-state.sizes, kind="stable")]
    rng = np.random.default_rng(13)
    order = rng.permutation(len(vectors))[:-3]  # another order, three members gone
    again = full_cluster(vectors[order], initial=initial, seed=1)
    assert adjusted_rand_score(labels[order], again) == 1.0


def test_full_cluster_groups_generated_repositories_at_a_browsable_grain():
    rows = generate_repositories(3000, seed=7)
    texts = [
        repository_text(r["full_name"], r["description"], r["language"], r["topics"], None)
        for r in rows
    ]
    groups = [r["group"] for r in rows]
    for model, least_ami in (("offline-hash-v1", 0.2), ("offline-hash-v2", 0.35)):
        labels = full_cluster(OfflineHashingProvider(model=model).embed(texts))
        sizes = np.bincount(labels)
        assert 10 <= len(sizes) <= 300, model  # tens of clusters for thousands, not thousands
        assert sizes[sizes >= 5].sum() >= 0.7 * len(rows) and sizes.max() <= 0.1 * len(rows)
        purity = contingency_matrix(groups, labels).max(axis=0).sum() / len(rows)
        shuffled = np.random.default_rng(0).permutation(labels)
        chance = contingency_matrix(groups, shuffled).max(axis=0).sum() / len(rows)
        assert purity > chance + 0.2, model
        assert adjusted_mutual_info_score(groups, labels) > least_ami, model


def test_full_cluster_of_nothing():
    assert full_cluster(np.empty((0, 8), np.float32)).shape == (0,)


def test_match_ids_keeps_ids_across_a_recluster_and_gives_fresh_ones_to_new_clusters():
    vectors, _ = blobs(15, 30, seed=6)  # 450 vectors: k = 15
    labels = full_cluster(vectors)
    ids, next_id = match_ids(np.full(len(vectors), -1), labels, next_id=0)
    state = ClusterState.from_labels(vectors, labels, ids, next_id)
    old_ids = ids[labels]

    # Small changes: ten members leave, a new blob of 60 arrives (k grows from 15 to 16).
    new_blob, _ = blobs(1, 60, seed=99)
    kept = np.arange(10, len(vectors))
    again = np.concatenate([vectors[kept], new_blob])
    before = np.concatenate([old_ids[kept], np.full(60, -1)])
    initial = state.centroids[np.argsort(-state.sizes, kind="stable")]  # as the index starts
    new_labels = full_cluster(again[::-1], initial=initial)[::-1]  # another order: other labels
    stable, next_again = match_ids(before, new_labels, state.next_id)
    assert np.array_equal(stable[new_labels[: len(kept)]], old_ids[kept])
    assert stable[new_labels[-1]] == state.next_id and next_again == state.next_id + 1


def test_match_ids_on_a_split_a_merge_and_a_mixture():
    # Old cluster 5 splits 6 + 4: the larger part keeps 5. Old 6 and 7 merge 3 + 2: the majority's
    # id.
    # A mixture (2 from 8, 2 from 9, 1 from 5: no majority) and a cluster of new members: fresh ids.
    old = np.array([5] * 6 + [5] * 4 + [6] * 3 + [7] * 2 + [8, 8, 9, 9, 5] + [-1] * 4)
    new = np.array([0] * 6 + [1] * 4 + [2] * 5 + [3] * 5 + [4] * 4)
    ids, next_id = match_ids(old, new, next_id=10)
    assert ids.tolist() == [5, 10, 6, 11, 12] and next_id == 13
    # next_id below an old id is raised: an id is never given twice.
    ids, next_id = match_ids(np.array([3, -1]), np.array([0, 1]), next_id=0)
    assert ids.tolist() == [3, 4] and next_id == 5


def test_summary_is_exact_and_drift_triggers_the_recluster_rule():
    vectors, labels = blobs(4, 25, seed=8)
    state = ClusterState.from_labels(vectors, labels)
    baseline = summary(state)
    assert (baseline["clusters"], baseline["members"], baseline["singletons"]) == (4, 100, 0)
    to_centroid = mean_similarity(vectors, labels, state.centroids)
    assert baseline["centroid_similarity"] == pytest.approx(to_centroid, abs=1e-6)
    similarity = vectors @ vectors.T
    to_others = [(similarity[i, labels == labels[i]].sum() - 1) / 24 for i in range(100)]
    assert baseline["member_similarity"] == pytest.approx(np.mean(to_others), abs=1e-5)
    assert needs_full_recluster(drift(state, baseline)) == (False, "within bounds")

    grown = drift({**baseline, "clusters": 6}, baseline)
    assert grown["cluster_growth"] == pytest.approx(0.5)
    due, reason = needs_full_recluster(grown)
    assert due and "cluster count grew by 50%" in reason

    looser = drift(
        {**baseline, "member_similarity": baseline["member_similarity"] - 0.05}, baseline
    )
    due, reason = needs_full_recluster(looser)
    assert due and "similarity fell by 0.050" in reason
    assert needs_full_recluster(looser, max_similarity_drop=0.1)[0] is False

    due, reason = needs_full_recluster(drift({**baseline, "members": 160}, baseline))
    assert due and "member count changed by +60%" in reason  # k would be a fifth larger
    assert needs_full_recluster(drift({**baseline, "members": 140}, baseline))[0] is False


def test_representatives_are_the_members_closest_to_each_centroid():
    vectors = unit([[1, 0.5, 0], [1, 0, 0], [1, -0.6, 0], [0, 0, 1], [0, 0.1, 1]])
    labels = np.array([0, 0, 0, 2, 2])
    state = ClusterState.from_labels(vectors[:3], labels[:3])
    centroids = np.concatenate([state.centroids, unit([[0, 1, 0]]), unit([[0, 0.02, 1]])])
    assert representatives(vectors, labels, centroids).tolist() == [1, -1, 3]


def test_near_duplicates_finds_planted_pairs_and_nothing_else():
    rng = np.random.default_rng(9)
    vectors, labels = blobs(5, 40, member_cos=0.7, d=64, seed=9)
    planted = [(3, 150), (10, 11), (57, 199)]
    for original, copy in planted:
        vectors[copy] = unit(vectors[original] + 0.01 * rng.standard_normal((1, 64)))[0]
        labels[copy] = labels[original]
    pairs = near_duplicates(vectors, labels, threshold=0.95)
    assert [(i, j) for i, j, _ in pairs] == sorted(planted)
    assert all(s >= 0.95 for _, _, s in pairs)
    # Members of different clusters are never paired.
    labels[150] = labels.max() + 1
    assert (3, 150) not in [(i, j) for i, j, _ in near_duplicates(vectors, labels)]


def test_near_duplicates_bounds_output_and_cuts_large_clusters():
    rng = np.random.default_rng(10)
    copies = unit(np.ones((40, 16)) + 1e-4 * rng.standard_normal((40, 16)))
    pairs = near_duplicates(copies, np.zeros(40, np.int64), per_member=3)
    assert len(pairs) == 37 * 3 + 2 + 1  # each member links to (at most) 3 later ones
    vectors, truth = blobs(6, 30, member_cos=0.9, d=32, seed=11)
    labels = np.zeros(len(vectors), np.int64)  # one large cluster, cut into groups of at most 40
    duplicates = {
        (i, j) for i, j, _ in near_duplicates(vectors, labels, threshold=0.75, max_group=40)
    }
    exact = {
        (i, j)
        for i, j, _ in near_duplicates(vectors, labels, threshold=0.75, per_member=len(vectors))
    }
    assert duplicates and duplicates <= exact
    assert all(truth[i] == truth[j] for i, j in exact)


def test_labels_pick_each_clusters_distinguishing_terms():
    texts = {
        1: [
            "acme/pgvec\nVector similarity search in Postgres\nLanguage: C\nTopics: postgres, "
            "vector-search",
            "bob/pg-embed\nStore embeddings as vectors in Postgres\nLanguage: Python",
            "carol/vecstore\nA postgres extension for vector search\nLanguage: Rust",
        ],
        2: [
            "acme/blaze\nA 2D game engine for pixel art games\nLanguage: C++\nTopics: game-engine, "
            "gamedev",
            "dave/orbit\nGame engine with physics and rendering\nLanguage: Rust",
            "erin/tiny-engine\nTiny game engine written in Lua\nLanguage: Lua",
        ],
        3: ["zed/notes\nLanguage: Python"],
    }
    # Other clusters of the collection, so that no term of 1 or 2 is in a third of it.
    others = {
        10 + i: [f"x/{w}\nA {w} {w}s tool\nLanguage: Python"] * 3
        for i, w in enumerate(["parser", "compiler", "browser", "editor", "scanner", "router"])
    }
    labels = cluster_labels(texts | others, top_terms=3)
    assert set(labels[1].split(" · ")) >= {"postgres"} and "vector" in labels[1]
    assert "game engine" in labels[2].split(" · ")
    for label in labels.values():
        words = set(label.replace(" · ", " ").split())
        assert not {"language", "topics", "acme", "python", "rust", "lua"} & words
    assert labels[3] == "notes"
    assert cluster_labels({4: ["a/b\n!!"]}) == {4: ""}


def test_labels_never_use_a_term_of_more_than_a_third_of_the_collection_or_a_language():
    rows = generate_repositories(1500, seed=3)
    texts = [
        repository_text(r["full_name"], r["description"], r["language"], r["topics"], None)
        for r in rows
    ]
    by_group: dict[str, list[str]] = {}
    for row, text in zip(rows, texts, strict=True):
        by_group.setdefault(row["group"], []).append(text)
    uses = Counter(term for text in texts for term in set(label_terms(text)))
    common = {term for term, n in uses.items() if n > len(texts) / 3}
    # A rule that can bite: the generated texts share words (and a few languages) this widely.
    assert common or any(n > len(texts) / 10 for n in uses.values())
    languages = {r["language"].lower() for r in rows if r["language"]}
    # Each group stands for itself in full, then as a sample of 5 that stands for its size.
    sample = {group: members[:5] for group, members in by_group.items()}
    sizes = {group: len(members) for group, members in by_group.items()}
    for labels in (cluster_labels(by_group), cluster_labels(sample, sizes=sizes)):
        assert sum(bool(label) for label in labels.values()) >= 0.8 * len(labels)
        for label in labels.values():
            terms = set(label.split(" · ")) - {""}
            assert not terms & common and not terms & languages, label
            assert not set(label.replace(" · ", " ").split()) & languages, label


def test_a_catch_all_is_cut_until_no_cluster_is_more_than_twice_the_mean_size():
    vectors, truth = blobs(12, 25, member_cos=0.8, d=32, seed=14)
    labels = np.where(truth < 6, 0, truth - 5)  # six blobs lumped into one cluster of 150
    cut = clustering._split_large(vectors, labels, 7, seed=0, batch_size=64)
    sizes = np.bincount(cut)
    assert sizes.max() <= 2 * len(vectors) / 7 and len(sizes) > 7
    assert np.array_equal(cut[truth >= 6], labels[truth >= 6])  # the others are left alone
    # Each cut follows the blobs: no blob is split between two clusters.
    assert all(len(np.unique(cut[truth == blob])) == 1 for blob in range(6))
    same = np.repeat(unit(np.ones((1, 8))), 40, axis=0)  # identical rows cannot be cut
    assert clustering._split_large(same, np.zeros(40, np.int64), 4, 0, 64).max() == 0
