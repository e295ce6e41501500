"""What a search may ask for: its modes, the cap on k and the checks of a request. Apart from the
search itself, so that the CLI's parser and its usage errors need nothing heavy."""

from __future__ import annotations

from embed_assets.lib.errors import UsageError

MODES = ("hybrid", "vector", "text")
MAX_K = 100  # results a search returns at most: past that, a listing, not a search


def check_request(query: str, k: int, mode: str) -> None:
    """A UsageError naming what is wrong with a search's query, k or mode."""
    if not query.strip():
        raise UsageError("the query is empty: give the words to search for")
    if not 1 <= k <= MAX_K:
        raise UsageError(f"k must be between 1 and {MAX_K} (results), got {k}")
    if mode not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
