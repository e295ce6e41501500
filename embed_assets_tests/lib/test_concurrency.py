"""Two runs over the same months at once, each with its own connection, as two processes would."""

import threading
import time
from collections import Counter
from datetime import UTC, datetime

from embed_assets.lib import pipeline
from embed_assets.lib.providers import space_name
from embed_assets.lib.store import open_store
from embed_assets_tests.helpers import ALL_TIME, RecordingProvider, source_row


class SlowProvider(RecordingProvider):
    """Records texts across threads and takes its time, so that the two runs overlap."""

    lock = threading.Lock()

    def embed(self, texts):
        time.sleep(0.3)
        with self.lock:
            return super().embed(texts)


def run_both(settings, window_a, window_b, provider):
    errors = []

    def run(window):
        try:
            with open_store(settings.database_url, settings) as store:
                pipeline.sync_rows(store, *window)
                pipeline.sync_chunks(store, *window, 400, 80)
                pipeline.sync_embeddings(store, *window, provider)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(w,)) for w in (window_a, window_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []


def test_two_runs_over_one_window_embed_each_text_once_and_write_no_duplicates(store, settings):
    store.upsert_source(
        [
            source_row(
                f"org/repo{i}",
                f"Project {i} parses {i % 7} formats",
                when=f"20{10 + i % 12}-0{1 + i % 9}-15",
            )
            for i in range(300)
        ]
    )
    provider = SlowProvider()
    run_both(settings, ALL_TIME, ALL_TIME, provider)
    sent = Counter(provider.sent)
    assert sent and max(sent.values()) == 1
    table = f"embeddings_{space_name(provider.model, provider.dimensions)}"
    rows, distinct = store.execute(
        f'SELECT count(*), count(DISTINCT chunk_id) FROM "{store.schema}"."{table}"'
    ).fetchone()
    assert rows == distinct == store.status(store.active_space())["chunks"]
    assert store.status(store.active_space())["pending"] == 0


def test_overlapping_ranges_embed_each_text_once(store, settings):
    store.upsert_source(
        [
            source_row(
                f"org/repo{i}", f"Tool {i} for {i % 5} things", when=f"2020-{1 + i % 12:02d}-10"
            )
            for i in range(240)
        ]
    )
    provider = SlowProvider()
    utc = lambda *a: datetime(*a, tzinfo=UTC)  # noqa: E731
    run_both(
        settings, (utc(2020, 1, 1), utc(2020, 9, 1)), (utc(2020, 5, 1), utc(2021, 1, 1)), provider
    )
    assert max(Counter(provider.sent).values()) == 1
    assert store.status(store.active_space())["pending"] == 0


def test_a_window_lock_is_released_when_its_connection_dies(store, settings):
    start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 3, 1, tzinfo=UTC)
    with open_store(settings.database_url, settings) as other:
        lock = other.window_lock("embeddings.x", start, end)
        lock.__enter__()  # held, then the connection goes away without releasing it
    with store.window_lock("embeddings.x", start, end):  # would wait for ever otherwise
        held = store.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ).fetchone()[0]
    assert held == 2  # January and February
