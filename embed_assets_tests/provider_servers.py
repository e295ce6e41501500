"""A real HTTP embedding server for tests and benchmarks, in a background thread on 127.0.0.1.

It speaks both wire formats: Ollama (`POST /api/embed`) and OpenAI (`POST /v1/embeddings`, base64 or
float vectors, `data` deliberately in reverse order so that clients must sort by `index`). A text's
vector is the offline provider's, so results can be compared with `OfflineHashingProvider`.

Every answer waits `latency` seconds first (the benchmark uses 100 ms). Faults, applied to the
next requests: `faults` is a queue of kinds (each used once; None answers cleanly, to place a
fault later), and with
`fault_rate` each other request draws one of `random_faults` from a seeded RNG. Kinds:
  "429" / "429-date"  HTTP 429 with Retry-After `retry_after` seconds / as an HTTP date (the next
                      whole second plus `retry_after`, rounded up)
  "500", "503"        server errors
  "slow"              waits `slow_seconds` (meant to exceed the client's timeout), then answers
  "malformed"         a body that is not JSON
  "count"             one vector too few
  "dimensions"        vectors one dimension too long
  "nan"               the first vector is all NaN
Any request holding an input that contains `reject_marker` gets HTTP 400, like a model server that
refuses one input; an input that contains `nan_marker` always gets a NaN vector. With `floats_only`
OpenAI vectors are float lists even when base64 is asked for, as some servers do. With `api_key`
set, requests must carry it (a wrong key is echoed back in the 401 body, as some servers do, to
test that clients scrub it).

Everything received is recorded: `requests` (path, headers, body, fault, status, and `arrived`: the
`time.time()` at which the request line was read), `max_in_flight`.
"""

from __future__ import annotations

import base64
import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from embed_assets.lib.providers import estimate_tokens
from embed_assets.lib.providers.offline import OfflineHashingProvider

MAX_BODY = 64 << 20


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict
    fault: str | None = None
    status: int = 0
    arrived: float = 0.0

    @property
    def texts(self) -> list[str]:
        texts = self.body.get("input") or []
        return [texts] if isinstance(texts, str) else list(texts)


class FakeEmbeddingServer:
    def __init__(
        self,
        *,
        dimensions: int = 32,
        latency: float = 0.0,
        faults: Iterable[str | None] = (),
        fault_rate: float = 0.0,
        random_faults: Iterable[str] = ("429", "500", "503"),
        seed: int = 0,
        retry_after: float = 0.0,
        slow_seconds: float = 1.0,
        reject_marker: str = "REJECT-ME",
        nan_marker: str = "NAN-ME",
        floats_only: bool = False,
        api_key: str | None = None,
    ) -> None:
        self.dimensions = dimensions
        self.latency = latency
        self.faults = deque(faults)
        self.fault_rate = fault_rate
        self.random_faults = tuple(random_faults)
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.reject_marker = reject_marker
        self.nan_marker = nan_marker
        self.floats_only = floats_only
        self.api_key = api_key
        self.requests: list[Received] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._embedder = OfflineHashingProvider(dimensions=dimensions)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self._http.block_on_close = False  # a "slow" request must not hold up stop()
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.02,), daemon=True)

    @property
    def ollama_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_port}"

    @property
    def openai_url(self) -> str:
        return f"{self.ollama_url}/v1"

    def __enter__(self) -> FakeEmbeddingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def texts_embedded(self) -> list[str]:
        """The texts of every request answered with usable vectors, in arrival order."""
        return [t for r in self.requests if r.status == 200 and r.fault is None for t in r.texts]

    def vectors(self, texts: list[str]) -> np.ndarray:
        """What a clean server returns for `texts`."""
        return self._embedder.embed(texts)

    def _next_fault(self) -> str | None:
        with self._lock:
            if self.faults:
                return self.faults.popleft()
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.random_faults)
            return None

    def _respond(
        self, path: str, headers: dict[str, str], body: dict, arrived: float
    ) -> tuple[int, dict, bytes]:
        """Status, extra headers and body for one request that arrived at `arrived`."""
        record = Received(path, headers, body, arrived=arrived)
        texts = record.texts
        with self._lock:
            self.requests.append(record)
        if self.api_key is not None:
            given = headers.get("authorization", "")
            if given != f"Bearer {self.api_key}":
                record.status = 401
                return (
                    401,
                    {},
                    _json({"error": {"message": f"Incorrect API key provided: {given}"}}),
                )
        if not texts or not all(isinstance(t, str) for t in texts):
            record.status = 400
            return 400, {}, _json({"error": "input must be a non-empty list of strings"})
        if any(self.reject_marker in t for t in texts):
            record.status = 400
            return 400, {}, _json({"error": {"message": "an input is not accepted by the model"}})
        record.fault = fault = self._next_fault()
        if fault and fault.startswith("429"):
            wait = (
                formatdate(math.ceil(time.time()) + math.ceil(self.retry_after), usegmt=True)
                if fault == "429-date"
                else str(self.retry_after)
            )
            record.status = 429
            return 429, {"Retry-After": wait}, _json({"error": "rate limited"})
        if fault in ("500", "503"):
            record.status = int(fault)
            return int(fault), {}, _json({"error": "server fault"})
        if fault == "slow":
            self._stopping.wait(self.slow_seconds)
        if fault == "malformed":
            record.status = 200
            return 200, {}, b'{"embeddings": [[0.1, 0.2'
        vectors = self._embedder.embed(texts)
        vectors[[self.nan_marker in t for t in texts]] = np.nan
        if fault == "count":
            vectors = vectors[:-1]
        elif fault == "dimensions":
            vectors = np.hstack([vectors, np.ones((len(vectors), 1), dtype=np.float32)])
        elif fault == "nan":
            vectors[0] = np.nan
        record.status = 200
        tokens = sum(map(estimate_tokens, texts))
        if path == "/api/embed":
            return (
                200,
                {},
                _json(
                    {
                        "model": body.get("model"),
                        "embeddings": vectors.tolist(),
                        "prompt_eval_count": tokens,
                    }
                ),
            )
        as_base64 = body.get("encoding_format") == "base64" and not self.floats_only
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
                if as_base64
                else v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]
        return (
            200,
            {},
            _json(
                {
                    "object": "list",
                    "data": data[::-1],
                    "model": body.get("model"),
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            ),
        )


def _json(value: object) -> bytes:
    return json.dumps(value).encode("utf-8")  # NaN is written as NaN, as a broken server might


def _handler(server: FakeEmbeddingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so that clients pool their connections
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK

        def do_POST(self) -> None:
            with server._lock:
                server._in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server._in_flight)
            try:
                self._handle()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout): nothing to answer
            finally:
                with server._lock:
                    server._in_flight -= 1

        def _handle(self) -> None:
            arrived = time.time()
            length = int(self.headers.get("content-length") or 0)
            if self.path not in ("/api/embed", "/v1/embeddings") or length > MAX_BODY:
                self._send(404 if length <= MAX_BODY else 413, {}, b"{}")
                return
            raw = self.rfile.read(length)
            if server.latency:
                server._stopping.wait(server.latency)
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, {}, _json({"error": "body is not JSON"}))
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._send(*server._respond(self.path, headers, body, arrived))

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # tests read `requests`, not stderr

    return Handler
