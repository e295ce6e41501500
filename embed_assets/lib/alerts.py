"""Alerts to a webhook: a JSON body with a Slack-compatible `text` and the fields `asset`,
`partition`, `check`, `severity`, `run_id`, `url`, posted with a timeout and retries.

The webhook URL usually holds a secret (Slack's ends with a token): it is never logged or put in an
error message; `redact_url` keeps its scheme and host only. Each request carries an
`Idempotency-Key` derived from the alert's identity, so that a receiver can drop a repeat (a
request that timed out after the server had received it is sent again).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from embed_assets.lib.settings import SettingError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
BACKOFF_MAX = 8.0  # seconds, whatever the attempt


class AlertRejected(Exception):
    """The webhook refused the alert (a 4xx but 408/425/429): sending it again cannot help."""


class AlertNotDelivered(Exception):
    """Every attempt failed on a timeout, a connection error or a retryable status."""


@dataclass(frozen=True)
class AlertSettings:
    webhook_url: str = field(default="", repr=False)  # may hold a token: never shown
    webserver_url: str = ""
    alert_on_warn: bool = False
    timeout: float = 5.0
    max_attempts: int = 3
    backoff: float = 0.5

    def __post_init__(self) -> None:
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise SettingError("EMBED_ASSETS_ALERT_WEBHOOK_URL must be an http:// or https:// URL")
        if self.webserver_url and not self.webserver_url.startswith(("http://", "https://")):
            raise SettingError(
                "DAGSTER_WEBSERVER_URL must be an http:// or https:// URL, got "
                f"{self.webserver_url!r}"
            )
        if not self.timeout > 0:
            raise SettingError("EMBED_ASSETS_ALERT_TIMEOUT must be a positive number of seconds")
        if self.max_attempts < 1:
            raise SettingError("EMBED_ASSETS_ALERT_MAX_ATTEMPTS must be a positive integer")
        if not self.backoff >= 0:
            raise SettingError("EMBED_ASSETS_ALERT_BACKOFF must be a number of seconds, 0 or more")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertSettings:
        environ = os.environ if environ is None else environ
        values: dict = {
            "webhook_url": environ.get("EMBED_ASSETS_ALERT_WEBHOOK_URL", "").strip(),
            "webserver_url": environ.get("DAGSTER_WEBSERVER_URL", "").strip(),
        }
        warn = environ.get("EMBED_ASSETS_ALERT_ON_WARN", "").strip().lower()
        if warn:
            if warn not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise SettingError(
                    f"EMBED_ASSETS_ALERT_ON_WARN must be true or false, got {warn!r}"
                )
            values["alert_on_warn"] = warn in ("1", "true", "yes", "on")
        for name, convert in (("timeout", float), ("max_attempts", int), ("backoff", float)):
            variable = f"EMBED_ASSETS_ALERT_{name.upper()}"
            raw = environ.get(variable, "").strip()
            if raw:
                try:
                    values[name] = convert(raw)
                except ValueError:
                    kind = "an integer" if convert is int else "a number"
                    raise SettingError(f"{variable} must be {kind}, got {raw!r}") from None
        return cls(**values)


@dataclass(frozen=True)
class Alert:
    """One failure to tell people about; `key` identifies the failure (run, asset, check,
    partition), so that it is sent once."""

    key: str
    text: str
    severity: str
    run_id: str
    asset: str | None = None
    partition: str | None = None
    check: str | None = None
    url: str | None = None

    def body(self) -> dict:
        return {
            "text": self.text,
            "asset": self.asset,
            "partition": self.partition,
            "check": self.check,
            "severity": self.severity,
            "run_id": self.run_id,
            "url": self.url,
        }


def redact_url(url: str) -> str:
    """Scheme and host of a webhook URL: its path and query may be a secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/***"


def run_url(webserver_url: str, run_id: str) -> str | None:
    """A link to the run in the Dagster UI, when DAGSTER_WEBSERVER_URL is set."""
    return f"{webserver_url.rstrip('/')}/runs/{run_id}" if webserver_url else None


def slack_escape(text: str) -> str:
    """Slack's three control characters in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _wait(settings: AlertSettings, attempt: int, response: httpx.Response | None) -> float:
    retry_after = response.headers.get("retry-after", "") if response is not None else ""
    if retry_after.isdigit():
        return min(float(retry_after), BACKOFF_MAX)
    return random.uniform(0.5, 1.0) * min(BACKOFF_MAX, settings.backoff * 2 ** (attempt - 1))


def post_alert(
    alert: Alert,
    settings: AlertSettings,
    *,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """POST the alert; returns the number of attempts it took. Timeouts, connection errors and
    408/425/429/5xx are retried with backoff (Retry-After honoured, capped); raises AlertRejected
    on another 4xx and AlertNotDelivered when every attempt failed."""
    target = redact_url(settings.webhook_url)
    headers = {"Idempotency-Key": hashlib.sha256(alert.key.encode()).hexdigest()[:32]}
    own = client is None
    client = client or httpx.Client(timeout=settings.timeout)
    try:
        for attempt in range(1, settings.max_attempts + 1):
            response = None
            try:
                response = client.post(settings.webhook_url, json=alert.body(), headers=headers)
            except httpx.TransportError as error:  # timeouts, refused connections, resets
                problem = type(error).__name__
            else:
                if response.status_code < 300:
                    return attempt
                if response.status_code not in RETRY_STATUSES:
                    raise AlertRejected(
                        f"the webhook at {target} answered HTTP {response.status_code}"
                    )
                problem = f"HTTP {response.status_code}"
            if attempt < settings.max_attempts:
                wait = _wait(settings, attempt, response)
                log.warning(
                    "alert %s to %s: %s (attempt %d of %d); retrying in %.1f s",
                    alert.key,
                    target,
                    problem,
                    attempt,
                    settings.max_attempts,
                    wait,
                )
                sleep(wait)
        raise AlertNotDelivered(
            f"the webhook at {target} failed {settings.max_attempts} times; last: {problem}"
        )
    finally:
        if own:
            client.close()
