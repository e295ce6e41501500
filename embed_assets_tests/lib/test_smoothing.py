"""Neighbour smoothing, what a full clustering partitions."""

import numpy as np

from embed_assets.lib.clusters.smoothing import MAX_SMOOTHED, NEIGHBOURS, smoothed


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_each_vector_moves_towards_its_nearest_neighbours():
    rng = np.random.default_rng(0)
    centres = unit(rng.standard_normal((3, 32)))
    vectors = unit(np.repeat(centres, 40, axis=0) + 0.35 * rng.standard_normal((120, 32)))
    moved = smoothed(vectors)
    assert moved.shape == vectors.shape and moved.dtype == np.float32
    assert np.allclose(np.linalg.norm(moved, axis=1), 1, atol=1e-5)
    scores = vectors @ vectors.T
    nearest = np.argsort(-scores, axis=1, kind="stable")[:, : NEIGHBOURS + 1]
    local = unit(vectors[nearest].mean(axis=1))
    before = np.einsum("ij,ij->i", vectors, local)
    after = np.einsum("ij,ij->i", moved, local)
    assert (after >= before - 1e-5).all() and after.mean() > before.mean() + 0.05
    # Members come closer to their own centre: the groups are easier to cut apart.
    own = np.repeat(np.arange(3), 40)
    assert (moved @ centres.T)[np.arange(120), own].mean() > (
        (vectors @ centres.T)[np.arange(120), own].mean()
    )
    assert np.array_equal(smoothed(vectors), moved)  # deterministic


def test_too_few_or_too_many_vectors_are_left_as_they_are():
    rng = np.random.default_rng(1)
    few = unit(rng.standard_normal((NEIGHBOURS + 1, 8)))
    assert smoothed(few) is few
    many = unit(rng.standard_normal((MAX_SMOOTHED + 1, 8)))
    assert smoothed(many) is many
