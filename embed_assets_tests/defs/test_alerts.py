"""Alerts: posting to a real local webhook (loopback only), and the sensor over real failed runs."""

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from embed_assets.definitions import build_definitions
from embed_assets.defs.alerts import alert_sensor
from embed_assets.lib import pipeline
from embed_assets.lib.alerts import (
    Alert,
    AlertNotDelivered,
    AlertRejected,
    AlertSettings,
    post_alert,
)
from embed_assets.lib.providers import build_provider
from embed_assets_tests.helpers import ALL_TIME, asset_key, source_row

SECRET = "T000/B000/not-a-real-token"
BODY_FIELDS = {"text", "asset", "partition", "check", "severity", "run_id", "url"}


class Webhook:
    """A webhook on 127.0.0.1 answering from a script ("ok", "500", "400", "hang"); "ok" once
    the script is used up. Every request's JSON body and Idempotency-Key are kept."""

    def __init__(self, script=()):
        self.script = list(script)
        self.requests: list[tuple[dict, str]] = []
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                webhook.requests.append((body, self.headers.get("Idempotency-Key", "")))
                action = webhook.script.pop(0) if webhook.script else "ok"
                if action == "hang":
                    time.sleep(1.0)  # past the client's timeout
                    return
                self.send_response(200 if action == "ok" else int(action))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def bodies(self) -> list[dict]:
        return [body for body, _ in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    opened = []

    def start(*script):
        opened.append(Webhook(script))
        return opened[-1]

    yield start
    for hook in opened:
        hook.close()


@pytest.fixture
def alert_env(monkeypatch):
    """Alert settings for fast tests: short timeout, two attempts, no backoff."""

    def configure(url: str | None, **values):
        if url:
            monkeypatch.setenv("EMBED_ASSETS_ALERT_WEBHOOK_URL", url)
        else:
            monkeypatch.delenv("EMBED_ASSETS_ALERT_WEBHOOK_URL", raising=False)
        values = {"TIMEOUT": "0.3", "MAX_ATTEMPTS": "2", "BACKOFF": "0", **values}
        for name, value in values.items():
            monkeypatch.setenv(f"EMBED_ASSETS_ALERT_{name}", value)

    return configure


def tick(instance, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = alert_sensor(context)
    return result, context.cursor


def test_post_retries_a_500_and_a_timeout_then_delivers_once(webhook, caplog):
    hook = webhook("500", "hang", "ok")
    settings = AlertSettings(webhook_url=hook.url, timeout=0.3, max_attempts=3, backoff=0)
    alert = Alert(
        key="run-1|embeddings|coverage|2020-05-01",
        text="coverage failed",
        severity="ERROR",
        run_id="run-1",
        asset="embeddings",
        partition="2020-05-01",
        check="coverage",
        url="http://dagster.local/runs/run-1",
    )
    with caplog.at_level(logging.WARNING):
        assert post_alert(alert, settings) == 3
    assert len(hook.requests) == 3 and len({key for _, key in hook.requests}) == 1
    assert hook.bodies[-1] == alert.body() and set(alert.body()) == BODY_FIELDS
    assert "HTTP 500" in caplog.text and "ReadTimeout" in caplog.text
    assert SECRET not in caplog.text and "127.0.0.1" in caplog.text

    with pytest.raises(AlertRejected, match="HTTP 400") as rejected:
        post_alert(alert, AlertSettings(webhook_url=webhook("400").url, max_attempts=3))
    assert SECRET not in str(rejected.value)
    hanging = webhook("hang", "hang")
    with pytest.raises(AlertNotDelivered, match="ReadTimeout") as failed:
        post_alert(
            alert, AlertSettings(webhook_url=hanging.url, timeout=0.3, max_attempts=2, backoff=0)
        )
    assert SECRET not in str(failed.value) and len(hanging.requests) == 2


def failing_check_run(settings, store, instance):
    """Real data with a zero vector stored and an oversized chunk; the checks of embeddings
    (a blocking ERROR fails: the run fails) and of chunks (a WARN fails: the run succeeds)."""
    store.upsert_source(
        [
            source_row("acme/one", "first", when="2020-05-02"),
            source_row("acme/two", "second", when="2020-05-20"),
        ]
    )
    pipeline.sync_rows(store, *ALL_TIME)
    pipeline.sync_chunks(store, *ALL_TIME, settings.chunk_chars, settings.chunk_overlap)
    pipeline.sync_embeddings(store, *ALL_TIME, build_provider(settings))
    space = store.active_space()
    store.execute(
        f'UPDATE "{store.schema}"."{space.table}" '
        f"SET embedding = array_fill(0, ARRAY[{space.dimensions}])::real[]::vector "
        "WHERE chunk_id = 'acme/two#0'"
    )
    store.execute(f"UPDATE \"{store.schema}\".chunks SET text = repeat('x', 5000)")
    defs = dg.Definitions.merge(
        build_definitions(settings),
        dg.Definitions(
            jobs=[
                dg.define_asset_job(
                    "checks",
                    selection=dg.AssetSelection.checks_for_assets(
                        asset_key("chunks"), asset_key("embeddings")
                    ),
                )
            ]
        ),
    )
    tags = {"dagster/partition": "2020-05-01"}
    return defs.resolve_job_def("checks").execute_in_process(
        instance=instance, raise_on_error=False, tags=tags
    )


@dg.asset
def broken() -> None:
    raise RuntimeError("the provider is down")


def test_the_sensor_posts_each_failure_exactly_once(
    settings, store, webhook, alert_env, monkeypatch
):
    hook = webhook()
    alert_env(hook.url)
    monkeypatch.setenv("DAGSTER_WEBSERVER_URL", "http://dagster.local:3000/")
    with dg.instance_for_test() as instance:
        checks_run = failing_check_run(settings, store, instance)
        assert not checks_run.success
        broken_run = dg.materialize([broken], instance=instance, raise_on_error=False)
        assert not broken_run.success

        result, cursor = tick(instance)
        assert isinstance(result, dg.SkipReason) and "sent 2 alerts" in result.skip_message
        assert SECRET not in result.skip_message
        check_alert, run_alert = sorted(hook.bodies, key=lambda b: b["check"] is None)
        assert set(check_alert) == BODY_FIELDS
        assert {
            k: check_alert[k] for k in ("asset", "check", "severity", "partition", "run_id", "url")
        } == {
            "asset": "repositories/embeddings",
            "check": "no_zero_vectors",
            "severity": "ERROR",
            "partition": "2020-05-01",
            "run_id": checks_run.run_id,
            "url": f"http://dagster.local:3000/runs/{checks_run.run_id}",
        }
        assert "`repositories/embeddings.no_zero_vectors` failed (ERROR)" in check_alert["text"]
        assert f"<http://dagster.local:3000/runs/{checks_run.run_id}|run " in check_alert["text"]
        # The checks run failed because of its blocking check: that alert says it all. The
        # other failed run gets its own alert, with the failing step and the error.
        assert (run_alert["run_id"], run_alert["asset"], run_alert["check"]) == (
            broken_run.run_id,
            "broken",
            None,
        )
        assert "the provider is down" in run_alert["text"]

        assert tick(instance, cursor)[1] == cursor and len(hook.requests) == 2  # nothing new

        # WARN failures alert only when configured to: the chunks check of a new run.
        monkeypatch.setenv("EMBED_ASSETS_ALERT_ON_WARN", "true")
        failing_check_run(settings, store, instance)
        tick(instance, cursor)
        new = hook.bodies[2:]
        assert sorted((b["check"], b["severity"]) for b in new) == [
            ("chunk_sizes", "WARN"),
            ("freshness", "WARN"),  # embeddings never materialised here
            ("no_zero_vectors", "ERROR"),
        ]


def test_the_sensor_survives_a_webhook_that_hangs_and_delivers_later(webhook, alert_env, caplog):
    hook = webhook("hang", "hang")
    alert_env(hook.url)
    with dg.instance_for_test() as instance:
        failed = dg.materialize([broken], instance=instance, raise_on_error=False)
        began = time.monotonic()
        with caplog.at_level(logging.INFO):
            result, cursor = tick(instance)
        assert time.monotonic() - began < 5
        assert "failed" in result.skip_message and len(hook.requests) == 2
        assert SECRET not in caplog.text
        # The webhook is back: the failure is delivered, once.
        result, cursor = tick(instance, cursor)
        assert "sent 1 alerts" in result.skip_message and len(hook.requests) == 3
        assert hook.bodies[-1]["run_id"] == failed.run_id
        tick(instance, cursor)
        assert len(hook.requests) == 3


def test_without_a_url_the_sensor_logs_and_skips(alert_env):
    alert_env(None)
    with dg.instance_for_test() as instance:
        dg.materialize([broken], instance=instance, raise_on_error=False)
        result, cursor = tick(instance)
    assert "EMBED_ASSETS_ALERT_WEBHOOK_URL is not set: 1 failures logged" in result.skip_message
    assert json.loads(cursor)["RUN_FAILURE"] > 0
