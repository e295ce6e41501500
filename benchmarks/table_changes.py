"""What a table collection's change detection costs, by the size of the source.

    .venv/bin/python benchmarks/table_changes.py [--rows 100000 1000000]

For each size, a generated `support_tickets` table (id, subject, body, customer, priority,
created_at over three years) in a schema of the benchmark's own, then:
  - poll: one `changed_months_by_hash` (the sensor tick of a view, or of a table declared
    `change_detection: poll`) with nothing changed, and after 1 % of bodies changed;
  - triggers: an UPDATE of 1 % of bodies, and of 1 % of a column the collection does not read,
    with the statement triggers installed against without (what the triggers add to a writer).
Uses its own EMBED_ASSETS_HOME (an embedded server of its own), so it never touches yours.
"""

import argparse
import os
import statistics
import tempfile
import time
from functools import partial

from psycopg import sql


def timed(work) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    os.environ["EMBED_ASSETS_HOME"] = tempfile.mkdtemp(prefix="embed_assets_bench_")
    os.environ["EMBED_ASSETS_SCHEMA"] = "benchmark"

    from embed_assets.lib.database import database_url, stop_embedded
    from embed_assets.lib.settings import Settings
    from embed_assets.lib.store import TableSpec, catalog_store, open_store

    settings = Settings.from_env()
    try:
        for n in args.rows:
            with catalog_store(database_url(settings), settings) as catalog:
                catalog.execute("DROP SCHEMA IF EXISTS bench_source CASCADE")
                catalog.execute("DROP SCHEMA IF EXISTS benchmark_tickets CASCADE")
                catalog.execute("CREATE SCHEMA bench_source")
                catalog.execute(
                    "CREATE TABLE bench_source.support_tickets AS SELECT i AS id, "
                    "'subject ' || (i %% 97) AS subject, md5(i::text) || ' body' AS body, "
                    "'customer ' || (i %% 50) AS customer, 'low' AS priority, 'bob' AS assignee, "
                    "timestamptz '2022-01-01' + (i %% 1095) * interval '1 day' AS created_at "
                    "FROM generate_series(1, %s) i",
                    (n,),
                )
                catalog.execute("ALTER TABLE bench_source.support_tickets ADD PRIMARY KEY (id)")
                catalog.execute("ANALYZE bench_source.support_tickets")
                untriggered = timed(partial(_update, catalog, "body"))
            for triggers in (False, True):
                spec = TableSpec(
                    store_schema="benchmark_tickets",
                    schema="bench_source",
                    table="support_tickets",
                    key=("id",),
                    time_column="created_at",
                    columns=("subject", "body"),
                    metadata=("customer", "priority"),
                    group_by="customer",
                    triggers=triggers,
                )
                with open_store(database_url(settings), settings, spec) as store:
                    began = time.perf_counter()
                    store.sync_table_rows(spec, *_all_time())
                    synced = time.perf_counter() - began
                    if not triggers:
                        poll = partial(store.changed_months_by_hash, spec)
                        still = [timed(poll), timed(poll)]
                        _update(store, "body")
                        changed = [timed(poll)]
                        months = len(poll()[0])
                        print(
                            f"{n:>9,} rows  poll, nothing changed: {statistics.median(still):.2f} s"
                            f"; after 1 % of bodies changed: {changed[0]:.2f} s ({months} months)"
                            f"; first sync of the rows table: {synced:.1f} s"
                        )
                    else:
                        read = timed(partial(_update, store, "body"))
                        ignored = timed(partial(_update, store, "assignee"))
                        print(
                            f"{n:>9,} rows  update of 1 %: {untriggered:.2f} s without "
                            f"triggers, {read:.2f} s with them (a column read), {ignored:.2f} s "
                            "(a column not read: no change logged)"
                        )
                    store.drop_schema()
    finally:
        stop_embedded(settings.home)
    return 0


def _update(store, column: str) -> None:
    """1 % of the rows get a new value of `column`, in one statement."""
    store.execute(
        sql.SQL(
            "UPDATE bench_source.support_tickets SET {c} = {c} || 'x' WHERE id % 100 = 7"
        ).format(c=sql.Identifier(column))
    )


def _all_time():
    from datetime import UTC, datetime

    return datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


if __name__ == "__main__":
    raise SystemExit(main())
