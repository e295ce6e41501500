"""The HTTP providers against a real local server speaking each wire format, with injected
faults."""

import logging
import math
import time

import dagster as dg
import numpy as np
import pytest

from embed_assets.defs.resources import EmbeddingProviderResource, resources_from
from embed_assets.lib.providers import ProviderError, build_provider
from embed_assets.lib.providers.client import LocalBudget, retry_after_seconds
from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets.lib.settings import PROVIDER_FIELDS, SettingError, Settings
from embed_assets_tests.provider_servers import FakeEmbeddingServer

FORMATS = ["ollama", "openai_compatible"]
TEXTS = [f"repo-{i}/tool {i}\nA tool that does thing number {i} with vectors" for i in range(40)]
FAST = {"backoff_base": 0.001, "backoff_max": 0.005, "timeout": 2.0}
KEY = "sk-test-VERY-SECRET-0123456789"


def make(server: FakeEmbeddingServer, provider: str = "openai_compatible", **settings):
    base_url = server.ollama_url if provider == "ollama" else server.openai_url
    return build_provider(
        Settings(**{"provider": provider, "base_url": base_url, "model": "m", **FAST, **settings})
    )


@pytest.fixture
def server():
    with FakeEmbeddingServer() as running:
        yield running


@pytest.mark.parametrize("kind", FORMATS)
def test_vectors_are_the_servers_in_input_order_across_concurrent_batches(server, kind):
    with make(server, kind, batch_size=3, max_concurrency=4) as provider:
        vectors = provider.embed(TEXTS)
    np.testing.assert_array_equal(vectors, server.vectors(TEXTS))
    assert vectors.dtype == np.float32
    assert len(server.requests) == math.ceil(len(TEXTS) / 3)
    assert sorted(server.texts_embedded()) == sorted(TEXTS)  # each text sent once


def test_ollama_wire_format(server):
    with make(server, "ollama", model="nomic-embed-text", dimensions=32) as provider:
        provider.embed(TEXTS[:2])
    request = server.requests[0]
    assert request.path == "/api/embed"
    assert request.body == {
        "model": "nomic-embed-text",
        "input": TEXTS[:2],
        "truncate": True,
        "dimensions": 32,
    }


def test_openai_wire_format_asks_base64_sends_the_key_and_reads_floats_too(server):
    with make(server, model="bge", api_key=KEY) as provider:
        provider.embed(TEXTS[:3])
    request = server.requests[0]
    assert request.path == "/v1/embeddings"
    assert request.body == {"model": "bge", "input": TEXTS[:3], "encoding_format": "base64"}
    assert request.headers["authorization"] == f"Bearer {KEY}"
    with FakeEmbeddingServer(floats_only=True) as floats, make(floats) as provider:
        np.testing.assert_array_equal(provider.embed(TEXTS[:3]), floats.vectors(TEXTS[:3]))


@pytest.mark.parametrize(
    ("model", "sent"), [("text-embedding-3-small", True), ("text-embedding-ada-002", False)]
)
def test_openai_sends_dimensions_only_to_models_that_take_them(server, model, sent):
    with make(server, "openai", model=model, dimensions=32, api_key=KEY) as provider:
        provider.embed(TEXTS[:1])
    assert ("dimensions" in server.requests[0].body) is sent


def test_batches_are_bounded_by_count_and_by_estimated_tokens(server):
    with make(server, batch_size=7, max_concurrency=1) as provider:
        provider.embed(TEXTS)
    assert [len(r.texts) for r in server.requests] == [7] * 5 + [5]
    server.requests.clear()
    texts = ["x" * 30] * 10 + ["y" * 300] + ["z" * 30] * 2  # 10 tokens each; 100 for the long one
    with make(server, max_batch_tokens=35, max_concurrency=1) as provider:
        np.testing.assert_array_equal(provider.embed(texts), server.vectors(texts))
    assert [len(r.texts) for r in server.requests] == [3, 3, 3, 1, 1, 2]


def test_requests_in_flight_are_bounded_by_max_concurrency():
    with (
        FakeEmbeddingServer(latency=0.05) as server,
        make(server, batch_size=2, max_concurrency=3) as provider,
    ):
        provider.embed(TEXTS)
    assert server.max_in_flight == 3


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize(
    "fault", ["429", "500", "503", "slow", "malformed", "count", "dimensions", "nan"]
)
def test_each_fault_recovers_to_exactly_the_vectors_of_a_clean_run(kind, fault):
    with (
        FakeEmbeddingServer(slow_seconds=1.0) as server,
        make(server, kind, batch_size=8, timeout=0.25) as provider,
    ):
        assert provider.dimensions == server.dimensions  # discovered from a clean first response
        server.faults.extend([fault, fault])
        vectors = provider.embed(TEXTS)
        metrics = provider.metrics.snapshot()
    np.testing.assert_array_equal(vectors, server.vectors(TEXTS))
    assert [r.fault for r in server.requests].count(fault) == 2
    batches = math.ceil(len(TEXTS) / 8)
    if fault == "nan":  # two good responses with a bad row each: both rows asked for once more
        assert len(server.requests) == 1 + batches + 1
        assert len(server.requests[-1].texts) == 2
    else:  # two failed requests, each repeated
        assert len(server.requests) == 1 + batches + 2
        assert metrics["retries"] == 2


def test_a_text_that_always_comes_back_nan_is_returned_for_the_caller_to_refuse(server):
    texts = ["fine text", "NAN-ME please", "another fine text"]
    with make(server) as provider:
        vectors = provider.embed(texts)
    assert np.isnan(vectors[1]).all()
    np.testing.assert_array_equal(vectors[[0, 2]], server.vectors([texts[0], texts[2]]))
    assert [r.texts for r in server.requests] == [
        texts,
        [texts[1]],
    ]  # asked once more, then given up


@pytest.mark.parametrize(
    ("fault", "retry_after", "at_least"), [("429", 0.3, 0.3), ("429-date", 1, 0.9)]
)
def test_retry_after_is_honoured_in_seconds_and_as_an_http_date(fault, retry_after, at_least):
    with (
        FakeEmbeddingServer(faults=[fault], retry_after=retry_after) as server,
        make(server, dimensions=32) as provider,
    ):
        began = time.monotonic()
        provider.embed(TEXTS[:2])
        waited = time.monotonic() - began
    assert waited >= at_least
    assert [r.status for r in server.requests] == [429, 200]


def test_retry_after_is_capped_and_parsed():
    with (
        FakeEmbeddingServer(faults=["429"], retry_after=30) as server,
        make(server, dimensions=32, retry_after_max=0.05) as provider,
    ):
        began = time.monotonic()
        provider.embed(TEXTS[:1])
        assert time.monotonic() - began < 2
    assert retry_after_seconds("2.5") == 2.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    assert retry_after_seconds("soon") is None


def test_the_breaker_opens_after_consecutive_faults_and_the_run_fails_with_a_clear_message():
    with (
        FakeEmbeddingServer(fault_rate=1.0, random_faults=["503"]) as server,
        make(
            server, dimensions=32, breaker_threshold=3, max_attempts=10, max_concurrency=1
        ) as provider,
    ):
        with pytest.raises(ProviderError) as raised:
            provider.embed(TEXTS)
        assert str(raised.value) == (
            f"provider openai_compatible at {server.openai_url} failed 3 times in a row "
            "(last: HTTP 503); circuit open, not calling it again for this run"
        )
        assert len(server.requests) == 3
        with pytest.raises(ProviderError, match="circuit open"):
            provider.embed(TEXTS[:1])
        assert len(server.requests) == 3  # not called again
        assert provider.metrics.snapshot()["breaker"] == "open"


def test_rate_limits_do_not_open_the_breaker_but_attempts_are_bounded():
    with (
        FakeEmbeddingServer(faults=["429"] * 4) as server,
        make(server, dimensions=32, breaker_threshold=2) as provider,
    ):
        provider.embed(TEXTS[:1])
    with (
        FakeEmbeddingServer(faults=["500"] * 3) as server,
        make(server, dimensions=32, max_attempts=3) as provider,
    ):
        with pytest.raises(
            ProviderError,
            match=r"failed 3 attempts \(EMBED_ASSETS_MAX_ATTEMPTS\); "
            r"last: HTTP 500",
        ):
            provider.embed(TEXTS[:1])


def test_an_unreachable_server_is_retried_then_named():
    with FakeEmbeddingServer() as server:
        url = server.openai_url
    provider = build_provider(
        Settings(
            provider="openai_compatible",
            base_url=url,
            model="m",
            dimensions=32,
            max_attempts=2,
            **FAST,
        )
    )
    with provider, pytest.raises(ProviderError, match=r"failed 2 attempts.*ConnectError"):
        provider.embed(TEXTS[:1])


def test_a_rejected_batch_is_split_to_name_the_one_bad_input(server):
    texts = TEXTS[:16]
    texts[11] = "this one is REJECT-ME"
    with make(server, dimensions=32, max_concurrency=1) as provider:
        with pytest.raises(
            ProviderError,
            match=r"rejected input 11 \('this one is REJECT-ME'.*"
            r"HTTP 400: .*not accepted by the model",
        ):
            provider.embed(texts)
    assert len(server.requests) <= 2 * math.log2(16) + 1
    accepted = [t for r in server.requests if r.status == 200 for t in r.texts]
    assert sorted(accepted) == sorted(texts[:11])  # the input after the bad one is never needed


def test_long_inputs_are_truncated_at_a_character_boundary_or_rejected(server):
    texts = ["short", "é" * 50, "x" * 100]  # 34 and 34 estimated tokens; the limit is 10
    with make(server, dimensions=32, max_input_tokens=10) as provider:
        provider.embed(texts)
        assert provider.metrics.snapshot()["truncated"] == 2
    assert server.requests[0].texts == ["short", "é" * 15, "x" * 30]
    with make(
        server, "ollama", dimensions=32, max_input_tokens=10, long_input="reject"
    ) as provider:
        with pytest.raises(
            ProviderError,
            match=r"input 1 has about 34 tokens, more than "
            r"EMBED_ASSETS_MAX_INPUT_TOKENS=10.*nothing was sent",
        ):
            provider.embed(texts)
        provider.embed(texts[:1])
    assert len(server.requests) == 2
    assert server.requests[1].body["truncate"] is False  # Ollama must not cut what we refuse to


def test_dimensions_are_discovered_once_and_a_mismatch_is_a_clear_error(server):
    with make(server) as provider:
        assert provider.dimensions == 32
        assert provider.dimensions == 32
    assert [r.texts for r in server.requests] == [["dimensions probe"]]
    with make(server, dimensions=16) as provider:
        with pytest.raises(
            ProviderError,
            match=r"returned 32-dimensional vectors, but "
            r"EMBED_ASSETS_DIMENSIONS is 16: set it to 32",
        ):
            provider.embed(TEXTS[:1])
    with FakeEmbeddingServer(dimensions=2001) as wide, make(wide) as provider:
        with pytest.raises(ProviderError, match="at most 2000: set EMBED_ASSETS_DIMENSIONS"):
            _ = provider.dimensions  # discovered on first use


def test_rate_limits_pace_requests_and_tokens():
    budget = LocalBudget(requests_per_minute=600, tokens_per_minute=0)  # one every 0.1 s
    assert [round(budget.reserve(1), 1) for _ in range(3)] == [0.0, 0.1, 0.2]
    with (
        FakeEmbeddingServer() as server,
        make(server, dimensions=32, batch_size=1, requests_per_minute=1200) as provider,
    ):
        began = time.monotonic()
        provider.embed(TEXTS[:5])
        assert time.monotonic() - began >= 4 * 0.05 - 0.01


def test_metrics_snapshot(server):
    with make(server, dimensions=32, price_per_million_tokens=0.02, batch_size=10) as provider:
        provider.embed(TEXTS)
        snapshot = provider.metrics.snapshot()
    assert set(snapshot) == {
        "provider_calls",
        "retries",
        "texts_sent",
        "tokens",
        "truncated",
        "latency_p50_ms",
        "latency_p95_ms",
        "breaker",
        "estimated_cost",
    }
    assert (snapshot["provider_calls"], snapshot["texts_sent"]) == (4, 40)
    assert (snapshot["retries"], snapshot["truncated"], snapshot["breaker"]) == (0, 0, "closed")
    assert snapshot["tokens"] > 0 and snapshot["latency_p95_ms"] >= snapshot["latency_p50_ms"] > 0
    assert snapshot["estimated_cost"] == pytest.approx(snapshot["tokens"] * 0.02 / 1e6)
    offline = OfflineHashingProvider(dimensions=16)
    offline.embed(TEXTS)
    assert offline.metrics.snapshot()["texts_sent"] == 40


def test_the_api_key_never_reaches_logs_errors_or_reprs(caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)  # the root logger's level: httpx's and httpcore's too
    monkeypatch.setenv("EMBED_ASSETS_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeEmbeddingServer(
        api_key=KEY, faults=["429", "503", "slow"], slow_seconds=0.5
    ) as server:
        monkeypatch.setenv("EMBED_ASSETS_BASE_URL", server.openai_url)
        settings = Settings.from_env(**{**FAST, "timeout": 0.2})
        assert settings.api_key == KEY
        with build_provider(settings) as provider:
            provider.embed(TEXTS[:3])
            shown = [
                repr(settings),
                repr(provider),
                str(vars(provider)),
                str(provider.metrics.snapshot()),
            ]
        wrong = Settings.from_env(**FAST, api_key=KEY + "-wrong")
        with build_provider(wrong) as provider, pytest.raises(ProviderError) as raised:
            provider.embed(TEXTS[:1])
        assert "HTTP 401 (check the API key)" in str(raised.value)
        assert "[api key]" in str(raised.value)  # the server echoed it back: scrubbed
        resource = resources_from(settings)["embedding_provider"]
        assert resource.api_key.env_var_name == "OPENAI_API_KEY"  # Dagster shows the name only

        @dg.asset
        def embedded(embedding_provider: EmbeddingProviderResource) -> dg.MaterializeResult:
            with embedding_provider.open() as opened:
                opened.embed(TEXTS[:1])
                return dg.MaterializeResult(metadata=opened.metrics.snapshot())

        result = dg.materialize([embedded], resources={"embedding_provider": resource})
        shown += [
            str(raised.value),
            repr(resource),
            str(result.asset_materializations_for_node("embedded")[0].metadata),
        ]
    assert result.success
    assert {r.headers["authorization"] for r in server.requests} == {
        f"Bearer {KEY}",
        f"Bearer {KEY}-wrong",
    }  # the EnvVar resolved to the key at run time
    assert "HTTP Request" in caplog.text and "retrying" in caplog.text  # the logs were captured
    for text in [caplog.text, *shown]:
        assert KEY not in text


def test_settings_errors_name_the_variable():
    cases = {
        "EMBED_ASSETS_LONG_INPUT": "chop",
        "EMBED_ASSETS_TIMEOUT": "soon",
        "EMBED_ASSETS_BASE_URL": "ftp://host",
        "EMBED_ASSETS_MAX_ATTEMPTS": "0",
        "EMBED_ASSETS_DIMENSIONS": "-1",
        "EMBED_ASSETS_BACKOFF_BASE": "-1",
    }
    for name, value in cases.items():
        with pytest.raises(SettingError, match=name):
            Settings.from_env({name: value})
    problems = [
        ({"EMBED_ASSETS_PROVIDER": "openai"}, "EMBED_ASSETS_API_KEY or OPENAI_API_KEY"),
        ({"EMBED_ASSETS_PROVIDER": "together", "EMBED_ASSETS_MODEL": "m"}, "TOGETHER_API_KEY"),
        (
            {"EMBED_ASSETS_PROVIDER": "openai_compatible", "EMBED_ASSETS_MODEL": "m"},
            "EMBED_ASSETS_BASE_URL must be set",
        ),
        (
            {"EMBED_ASSETS_PROVIDER": "together", "TOGETHER_API_KEY": "k"},
            "EMBED_ASSETS_MODEL must name",
        ),
        ({"EMBED_ASSETS_PROVIDER": "cohere"}, "known: offline, ollama, openai"),
    ]
    for environ, message in problems:
        with pytest.raises(SettingError, match=message):
            build_provider(Settings.from_env(environ))


def test_api_key_fallbacks_and_defaults():
    assert (
        Settings.from_env({"EMBED_ASSETS_PROVIDER": "openai", "OPENAI_API_KEY": "a"}).api_key == "a"
    )
    assert (
        Settings.from_env(
            {"EMBED_ASSETS_PROVIDER": "openai", "OPENAI_API_KEY": "a", "EMBED_ASSETS_API_KEY": "b"}
        ).api_key
        == "b"
    )
    assert (
        Settings.from_env({"EMBED_ASSETS_PROVIDER": "ollama", "OPENAI_API_KEY": "a"}).api_key == ""
    )
    with build_provider(Settings(provider="openai", api_key="k")) as openai:
        assert (openai.base_url, openai.model, openai.batch_size, openai.max_concurrency) == (
            "https://api.openai.com/v1",
            "text-embedding-3-small",
            256,
            8,
        )
    with build_provider(Settings(provider="ollama")) as ollama:
        assert (ollama.base_url, ollama.model, ollama.batch_size, ollama.max_input_tokens) == (
            "http://localhost:11434",
            "nomic-embed-text",
            64,
            2048,
        )
    assert build_provider(Settings()).dimensions == 384  # the offline default


def test_the_resource_carries_every_provider_setting_and_closes_its_client(server):
    assert set(EmbeddingProviderResource.model_fields) == set(PROVIDER_FIELDS)
    resource = EmbeddingProviderResource(
        provider="openai_compatible",
        base_url=server.openai_url,
        model="m",
        dimensions=32,
        batch_size=5,
    )
    with resource.open() as provider:
        assert provider.batch_size == 5
        provider.embed(TEXTS[:2])
    with pytest.raises(RuntimeError, match="closed"):
        provider.embed(TEXTS[:2])
