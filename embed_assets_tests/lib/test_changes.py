"""The change log cursor (exact under concurrent writers) and the grouping of months into runs."""

from datetime import UTC, datetime

import psycopg
from psycopg import sql

from embed_assets.lib.changes import ChangeCursor, partition_ranges, read_changes
from embed_assets.lib.pipeline import sync_rows
from embed_assets_tests.helpers import source_row


def month(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_inserts_updates_and_deletes_are_read_once(store):
    store.upsert_source(
        [source_row("a/one", when="2020-01-05"), source_row("a/two", when="2021-03-09")]
    )
    first = read_changes(store, ChangeCursor())
    assert first.months == {month("2020-01-01"), month("2021-03-01")}
    assert first.count == 2 and first.cursor.gaps == ()
    assert read_changes(store, first.cursor).count == 0

    store.upsert_source([source_row("a/one", "a new description", when="2020-01-05")])
    store.execute(sql.SQL("DELETE FROM {} WHERE full_name = 'a/two'").format(store.source))
    second = read_changes(store, first.cursor)
    assert second.months == {month("2020-01-01"), month("2021-03-01")} and second.count == 2


def test_stars_only_changes_are_not_logged(store):
    store.upsert_source([source_row("a/one", stars=1)])
    cursor = read_changes(store, ChangeCursor()).cursor
    store.upsert_source([source_row("a/one", stars=5000)])
    assert read_changes(store, cursor).count == 0


def test_a_change_committed_late_with_a_lower_id_is_not_skipped(store, settings):
    """Writer A logs a change (id n) but commits after writer B (id n+1) and after a read."""
    with psycopg.connect(settings.database_url) as slow:  # not autocommit: a transaction stays open
        slow.execute(
            sql.SQL(
                "INSERT INTO {} (full_name, description, created_at) "
                "VALUES ('slow/writer', 'x', '2019-06-01')"
            ).format(store.source)
        )
        store.upsert_source([source_row("fast/writer", when="2022-02-02")])
        early = read_changes(store, ChangeCursor())
        assert early.months == {month("2022-02-01")}
        assert early.cursor.gaps  # the invisible id below the one read
        slow.commit()
    late = read_changes(store, early.cursor)
    assert late.months == {month("2019-06-01")} and late.count == 1
    # Once no transaction from before the gap was noticed runs, empty gaps are dropped.
    assert read_changes(store, late.cursor).cursor.gaps == ()


def test_a_writer_older_than_the_one_that_committed_still_holds_its_gap(store, settings):
    """C takes its transaction id first; W logs id n, C logs n+1 and commits; while W runs, the
    gap at n must survive every read (W is not older than the reader's snapshot horizon)."""
    insert = sql.SQL("INSERT INTO {} (full_name, description, created_at) VALUES (%s, 'x', %s)")
    with (
        psycopg.connect(settings.database_url) as crawler,
        psycopg.connect(settings.database_url) as writer,
    ):
        crawler.execute("SELECT pg_current_xact_id()")  # C's id, lower than W's
        writer.execute(insert.format(store.source), ("w/late", "2018-03-03"))
        crawler.execute(insert.format(store.source), ("c/early", "2022-02-02"))
        crawler.commit()
        cursor = ChangeCursor()
        for _ in range(3):  # ticks while W is still running
            changes = read_changes(store, cursor)
            cursor = changes.cursor
            assert cursor.gaps, "the gap of W's change was dropped while W runs"
        writer.commit()
    assert read_changes(store, cursor).months == {month("2018-03-01")}


def test_a_read_cut_by_the_limit_expires_no_gap(store, settings):
    insert = sql.SQL("INSERT INTO {} (full_name, description, created_at) VALUES (%s, 'x', %s)")
    with psycopg.connect(settings.database_url) as slow:
        slow.execute(insert.format(store.source), ("s/one", "2011-01-01"))
        slow.execute(insert.format(store.source), ("s/two", "2012-01-01"))
        store.upsert_source([source_row("fast/writer", when="2013-01-01")])
        cursor = read_changes(store, ChangeCursor()).cursor
        slow.commit()
    first = read_changes(store, cursor, limit=1)
    second = read_changes(store, first.cursor, limit=1)
    assert first.months | second.months == {month("2011-01-01"), month("2012-01-01")}


def test_a_rolled_back_change_leaves_a_gap_that_expires(store, settings):
    with psycopg.connect(settings.database_url) as aborted:
        aborted.execute(
            sql.SQL("INSERT INTO {} (full_name, description) VALUES ('gone/row', 'x')").format(
                store.source
            )
        )
        store.upsert_source([source_row("kept/row")])
        cursor = read_changes(store, ChangeCursor()).cursor
        assert cursor.gaps
        aborted.rollback()
    after = read_changes(store, cursor)
    assert after.count == 0 and after.cursor.gaps == ()


def test_the_limit_bounds_a_read_and_the_next_read_goes_on(store):
    store.upsert_source([source_row(f"o/r{i}", when=f"20{10 + i}-01-01") for i in range(6)])
    first = read_changes(store, ChangeCursor(), limit=4)
    second = read_changes(store, first.cursor, limit=4)
    assert (first.count, second.count) == (4, 2)
    assert len(first.months | second.months) == 6


def test_cursor_text_round_trips_and_reads_a_bare_id():
    cursor = ChangeCursor(41, ((3, 5, 777), (9, 9, 780)))
    assert ChangeCursor.from_text(cursor.to_text()) == cursor
    assert ChangeCursor.from_text("12") == ChangeCursor(12)
    assert ChangeCursor.from_text(None) == ChangeCursor()


KEYS = [f"2020-{m:02d}-01" for m in range(1, 13)]


def test_ranges_merge_neighbours_and_smallest_gaps_first():
    assert partition_ranges([], KEYS, 3) == []
    assert partition_ranges(["2020-03-01", "2020-04-01"], KEYS, 3) == [("2020-03-01", "2020-04-01")]
    changed = ["2020-01-01", "2020-02-01", "2020-05-01", "2020-06-01", "2020-12-01"]
    assert partition_ranges(changed, KEYS, 3) == [
        ("2020-01-01", "2020-02-01"),
        ("2020-05-01", "2020-06-01"),
        ("2020-12-01", "2020-12-01"),
    ]
    assert partition_ranges(changed, KEYS, 2) == [
        ("2020-01-01", "2020-06-01"),
        ("2020-12-01", "2020-12-01"),
    ]
    assert partition_ranges(changed, KEYS, 1) == [("2020-01-01", "2020-12-01")]
    assert partition_ranges(["1999-01-01"], KEYS, 2) == []  # no such partition


def test_a_burst_over_hundreds_of_partitions_is_a_bounded_number_of_ranges():
    keys = [f"{y}-{m:02d}-01" for y in range(2000, 2025) for m in range(1, 13)]
    burst = keys[::2]  # every other month: 150 separate partitions
    ranges = partition_ranges(burst, keys, 4)
    assert len(ranges) == 4
    covered = {k for first, last in ranges for k in keys[keys.index(first) : keys.index(last) + 1]}
    assert set(burst) <= covered


def logged(store) -> int:
    return store.execute(
        sql.SQL("SELECT count(*) FROM {}").format(store.t("source_changes"))
    ).fetchone()[0]


def test_the_rows_step_takes_the_changes_it_handled_out_of_the_log(store, settings):
    """A sync's run and the sensor's runs share the log: a window handled by either is gone
    from it, so the other neither re-reads it nor asks for a run over it."""
    store.upsert_source(
        [source_row("o/jan", when="2020-01-05"), source_row("o/feb", when="2020-02-05")]
    )
    assert set(store.logged_change_months()) == {month("2020-01-01"), month("2020-02-01")}
    sensor_cursor = ChangeCursor()
    sync_rows(store, month("2020-01-01"), month("2020-02-01"))  # a run over January
    assert store.logged_change_months() == [month("2020-02-01")]
    seen = read_changes(store, sensor_cursor)
    assert seen.months == {month("2020-02-01")}  # the sensor asks for February only
    sync_rows(store, month("2020-02-01"), month("2020-03-01"))
    assert logged(store) == 0 and read_changes(store, seen.cursor).count == 0


def test_a_change_committed_while_a_run_handles_its_window_stays_in_the_log(store, settings):
    store.upsert_source([source_row("o/first", when="2020-01-05")])
    with (
        store.handling_changes(month("2020-01-01"), month("2020-02-01")),
        psycopg.connect(settings.database_url, autocommit=True) as writer,
    ):
        writer.execute(
            sql.SQL(
                "INSERT INTO {} (full_name, description, created_at) "
                "VALUES ('o/during', 'x', '2020-01-09')"
            ).format(store.source)
        )
    # The first change was handled; the one committed meanwhile was not seen when the window's
    # ids were taken, so it waits for the next run.
    assert logged(store) == 1
    assert store.logged_change_months() == [month("2020-01-01")]


def test_a_change_not_yet_visible_is_never_dropped_before_it_is_read(store, settings):
    with psycopg.connect(settings.database_url) as slow:
        slow.execute(
            sql.SQL(
                "INSERT INTO {} (full_name, description, created_at) "
                "VALUES ('slow/writer', 'x', '2019-06-01')"
            ).format(store.source)
        )
        store.upsert_source([source_row("fast/writer")])
        early = read_changes(store, ChangeCursor()).cursor
        sync_rows(store, month("2019-06-01"), month("2019-07-01"))
        slow.commit()
    assert read_changes(store, early).months == {month("2019-06-01")}  # still there
