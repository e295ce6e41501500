"""Reading the source change log (`source_changes`) with an exact cursor, and turning the months it
names into a few runs over partition ranges.

Change ids come from a sequence when a row is logged but become visible when the writing
transaction commits, so id 101 can be seen before id 100 (two loaders, a crawler beside a load).
A cursor that kept only the highest id read would skip 100 for ever. So the cursor also keeps the
ids below it not yet seen ("gaps") until every transaction that was running when they were
noticed has ended: a gap still empty then was a rolled-back or skipped sequence value.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Sequence

Ranges = tuple[tuple[int, int], ...]  # inclusive [low, high] ranges of change ids


@dataclass(frozen=True)
class ChangeCursor:
    position: int = 0  # the highest change id read
    gaps: Ranges = ()  # ids at or below position not seen yet
    gaps_until: int = 0  # transaction id: once all before it have ended, the gaps are dropped

    def read_through(self) -> int:
        """The highest id such that this reader has read every change up to it."""
        return min(low for low, _ in self.gaps) - 1 if self.gaps else self.position

    def to_text(self) -> str:
        return json.dumps({"position": self.position, "gaps": [list(g) for g in self.gaps],
                           "gaps_until": self.gaps_until}, separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str | None) -> ChangeCursor:
        """A cursor from `to_text`, or from a bare id (the form of earlier versions)."""
        if not text:
            return cls()
        if text.strip().isdigit():
            return cls(int(text))
        value = json.loads(text)
        return cls(int(value["position"]), tuple((int(lo), int(hi)) for lo, hi in value["gaps"]),
                   int(value["gaps_until"]))


@dataclass
class Changes:
    months: set[datetime] = field(default_factory=set)  # months (UTC) of the changed rows
    count: int = 0  # changes read
    cursor: ChangeCursor = field(default_factory=ChangeCursor)


def read_changes(store, cursor: ChangeCursor, limit: int | None = None) -> Changes:
    """The changes after `cursor` (at most `limit`, oldest first) and the cursor past them."""
    rows, oldest_running, next_xid = store.read_change_log(cursor.position, cursor.gaps, limit)
    seen = sorted(change_id for change_id, _ in rows)
    position = max([cursor.position, *seen])
    gaps = list(_missing(cursor.gaps, seen)) if oldest_running < cursor.gaps_until else []
    fresh = list(_missing(((cursor.position + 1, position),), seen))
    until = next_xid if fresh else cursor.gaps_until
    return Changes({month for _, month in rows}, len(rows),
                   ChangeCursor(position, tuple(gaps + fresh) if gaps or fresh else (),
                                until if gaps or fresh else 0))


def record_reader(store, reader: str, cursor: ChangeCursor) -> int:
    """Record where `reader` (`sync`, the sensor) is in the log, then drop the changes that every
    recorded reader has read, so that the log does not grow for ever; returns how many. A reader
    that stops for good holds the log back until its row in `cursors` is deleted."""
    store.set_cursor(reader, cursor.position, cursor.to_text())
    through = min(ChangeCursor.from_text(text).read_through() for text in store.cursor_states())
    return store.prune_change_log(through)


def _missing(ranges: Iterable[tuple[int, int]], seen: Sequence[int]) -> Iterable[tuple[int, int]]:
    """The parts of `ranges` holding no id of `seen` (sorted)."""
    for low, high in ranges:
        at = bisect.bisect_left(seen, low)
        while low <= high:
            if at < len(seen) and seen[at] <= high:
                if seen[at] > low:
                    yield (low, seen[at] - 1)
                low = seen[at] + 1
                at += 1
            else:
                yield (low, high)
                break


def partition_ranges(keys: Iterable[str], all_keys: Sequence[str],
                     max_ranges: int) -> list[tuple[str, str]]:
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
        spans[i:i + 2] = [[spans[i][0], spans[i + 1][1]]]
    return [(all_keys[first], all_keys[last]) for first, last in spans]
