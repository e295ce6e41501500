"""Neighbour smoothing: what a full clustering partitions, in place of the raw vectors.

Each vector is moved towards the mean of its nearest neighbours (itself among them), then
re-normalised: a row whose text is short or oddly worded sits with the rows around it rather
than wherever its few words put it, so k-means cuts between neighbourhoods instead of through
them. Centroids, similarities and incremental assignment keep using the raw vectors.

On the weak-label evaluation (`benchmarks/quality.py`, docs/benchmarks.md) 20 neighbours raised the
full clustering's AMI from 0.288-0.299 to 0.306-0.316 (all-MiniLM-L6-v2) and from 0.299-0.333 to
0.355 (offline-hash-v2) over three seeds. The neighbours are exact, from an all-pairs product in
blocks, so it runs up to `MAX_SMOOTHED` vectors (~1 s there); larger sets (or a group of a
collection past that size) are clustered as they are, since smoothing by a sample's neighbours
did not help (measured: a third of the rows as candidates, 0.290 / 0.335).
"""

from __future__ import annotations

import numpy as np

NEIGHBOURS = 20
MAX_SMOOTHED = 8192
_BLOCK = 1024  # rows whose scores against all are computed at once (32 MiB at MAX_SMOOTHED)


def smoothed(vectors: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Unit vectors: each the normalised sum of itself and the mean of its `neighbours` + 1
    nearest (itself among them); the input itself when it has more than `MAX_SMOOTHED` rows or
    too few to have that many neighbours."""
    n = len(vectors)
    if n > MAX_SMOOTHED or n <= neighbours + 1:
        return vectors
    out = np.empty_like(vectors)
    for start in range(0, n, _BLOCK):
        part = vectors[start : start + _BLOCK]
        nearest = np.argpartition(-(part @ vectors.T), neighbours, axis=1)[:, : neighbours + 1]
        out[start : start + _BLOCK] = part + vectors[nearest].mean(axis=1)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.where(norms > 0, norms, 1)).astype(np.float32)
