"""Reading the source change log (`source_changes`) with an exact cursor, and turning the months it
names into a few runs over partition ranges. The sensor reads it so; a run's rows step deletes the
changes it handled (`Store.handling_changes`), which keeps the log short.

Change ids come from a sequence when a row is logged but become visible when the writing
transaction commits, so id 101 can be seen before id 100 (two loaders, a crawler beside a load).
A cursor that kept only the highest id read would skip 100 for ever. So the cursor also keeps the
ids below it not yet seen ("gaps") until every transaction that was running when they were
noticed has ended: a gap still empty then was a rolled-back or skipped sequence value.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

Gap = tuple[int, int, int]  # ids low..high not seen yet, and the transaction id they wait for


@dataclass(frozen=True)
class ChangeCursor:
    position: int = 0  # the highest change id read
    # Each gap waits until every transaction older than its transaction id has ended: a change
    # logged there is then visible, and an id still missing was rolled back or skipped.
    gaps: tuple[Gap, ...] = ()

    def read_through(self) -> int:
        """The highest id such that this reader has read every change up to it."""
        return min(low for low, _, _ in self.gaps) - 1 if self.gaps else self.position

    def to_text(self) -> str:
        return json.dumps(
            {"position": self.position, "gaps": [list(g) for g in self.gaps]}, separators=(",", ":")
        )

    @classmethod
    def from_text(cls, text: str | None) -> ChangeCursor:
        """A cursor from `to_text`, or from a bare id (the form of earlier versions)."""
        if not text:
            return cls()
        if text.strip().isdigit():
            return cls(int(text))
        value = json.loads(text)
        return cls(
            int(value["position"]),
            tuple((int(lo), int(hi), int(until)) for lo, hi, until in value["gaps"]),
        )


@dataclass
class Changes:
    months: set[datetime] = field(default_factory=set)  # months (UTC) of the changed rows
    count: int = 0  # changes read
    cursor: ChangeCursor = field(default_factory=ChangeCursor)


def read_changes(store, cursor: ChangeCursor, limit: int | None = None) -> Changes:
    """The changes after `cursor` (at most `limit`, oldest first) and the cursor past them."""
    rows, oldest_running, reader_xid = store.read_change_log(
        cursor.position, [(low, high) for low, high, _ in cursor.gaps], limit
    )
    seen = sorted(change_id for change_id, _ in rows)
    position = max([cursor.position, *seen])
    # A read cut by the limit may have left visible gap ids unread: no gap expires then.
    cut = limit is not None and len(rows) >= limit
    kept = [
        (low, high, until)
        for gap in cursor.gaps
        for low, high, until in _missing([gap], seen)
        if cut or oldest_running < until
    ]
    # Ids skipped below the new position belong to transactions running now, all older than
    # this reader's own transaction id.
    fresh = [
        (low, high, reader_xid)
        for low, high, _ in _missing([(cursor.position + 1, position, reader_xid)], seen)
    ]
    return Changes(
        {month for _, month in rows}, len(rows), ChangeCursor(position, tuple(sorted(kept + fresh)))
    )


def _missing(gaps: Iterable[Gap], seen: Sequence[int]) -> Iterable[Gap]:
    """The parts of `gaps` holding no id of `seen` (sorted), each with its gap's transaction id."""
    for low, high, until in gaps:
        at = bisect.bisect_left(seen, low)
        while low <= high:
            if at < len(seen) and seen[at] <= high:
                if seen[at] > low:
                    yield (low, seen[at] - 1, until)
                low = seen[at] + 1
                at += 1
            else:
                yield (low, high, until)
                break


def partition_ranges(
    keys: Iterable[str], all_keys: Sequence[str], max_ranges: int
) -> list[tuple[str, str]]:
    """At most `max_ranges` (first, last) ranges of `all_keys` covering `keys`: runs over
    neighbouring partitions are merged across the smallest gaps first, since a run costs about
    half a second whatever it holds and an unchanged partition in a range costs almost nothing."""
    index = {key: i for i, key in enumerate(all_keys)}
    positions = sorted({index[key] for key in keys if key in index})
    if not positions:
        return []
    spans = [[positions[0], positions[0]]]
    for position in positions[1:]:
        if position == spans[-1][1] + 1:
            spans[-1][1] = position
        else:
            spans.append([position, position])
    while len(spans) > max(1, max_ranges):
        i = min(range(len(spans) - 1), key=lambda j: spans[j + 1][0] - spans[j][1])
        spans[i : i + 2] = [[spans[i][0], spans[i + 1][1]]]
    return [(all_keys[first], all_keys[last]) for first, last in spans]
