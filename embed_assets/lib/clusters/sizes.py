"""How many topic clusters a collection gets: here, apart from the algorithm, so that the checks
`embed-assets status` evaluates need no scikit-learn."""

from __future__ import annotations

import math

MAX_TOPICS = 500  # k's bound whatever n: more is no longer browsable


def topic_count(n: int) -> int:
    """The number of clusters a full clustering of n vectors makes (before dissolving small ones):
    sqrt(n / 2), so that clusters grow with the collection but stay fewer than a person can scan."""
    return int(min(MAX_TOPICS, max(2, round(math.sqrt(n / 2))), n))
