"""Webhook deliveries of ``pentora server``: a JSON POST per alert and configured
webhook, signed, retried with backoff, sent by greenlets that never hold up a scan.

The signature is Stripe's scheme: ``X-Pentora-Signature: sha256=HEX`` where HEX is
HMAC-SHA256 with the webhook's secret over ``TIMESTAMP + "." + BODY`` and TIMESTAMP is
``X-Pentora-Timestamp`` (Unix seconds); a receiver recomputes it and refuses an old
timestamp (a replay). ``X-Pentora-Delivery`` stays the same across the retries of one
delivery, so that a receiver can drop a repeat.

The POST is the standard library's ``urllib.request`` (gevent's patched sockets make it
cooperative in the server); redirects are not followed (a 3xx is a failed delivery): the
signed body would otherwise go to wherever the receiver points.
"""

from __future__ import annotations

import collections
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import random
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import voluptuous as vol
from pentora_plugins.kit.findings import SEVERITIES

from pentora import __version__, logger
from pentora.schema import Str

from ._alerts import at_severity

log = logger.bind(component="server")

SIGNATURE = "X-Pentora-Signature"
TIMESTAMP = "X-Pentora-Timestamp"
DELIVERY = "X-Pentora-Delivery"
EVENT = "X-Pentora-Event"
# Headers pentora sets itself: a configured header may not replace them.
RESERVED = {"content-type", "content-length", "host", "user-agent", "transfer-encoding",
            *(h.lower() for h in (SIGNATURE, TIMESTAMP, DELIVERY, EVENT))}
RESPONSE_READ = 64 * 1024  # what is read of an answer: its status matters, not its body


def check_url(value: object) -> str:
    if not isinstance(value, str):
        raise vol.Invalid(f"expected an http:// or https:// URL, got {value!r}")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise vol.Invalid(f"{redact(value)}: scheme {parts.scheme or '(none)'!r} is not allowed; "
                          "a webhook URL starts with http:// or https://")
    if not parts.hostname:
        raise vol.Invalid(f"{redact(value)}: no host; expected e.g. https://hooks.example.org/pentora")
    return value


def check_secret(value: object) -> str:
    if not isinstance(value, str) or len(value) < 16:
        # The message never repeats the value: it is a secret, even when a bad one.
        raise vol.Invalid("expected a secret of at least 16 characters "
                          "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return value


def check_headers(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise vol.Invalid(f"expected a mapping of header names to values, got {type(value).__name__}")
    for name, text in value.items():
        if not isinstance(name, str) or not name or not name.isascii() or any(c in name for c in " :\r\n"):
            raise vol.Invalid(f"header name {name!r} is not a valid HTTP header name")
        if name.lower() in RESERVED:
            raise vol.Invalid(f"header {name!r} is set by pentora; remove it from headers")
        if not isinstance(text, str) or "\r" in text or "\n" in text:
            raise vol.Invalid(f"header {name!r}: expected a one-line string value")
    return dict(value)


def check_severity(value: object) -> str:
    if value not in SEVERITIES:
        raise vol.Invalid(f"expected one of {', '.join(SEVERITIES)}, got {value!r}")
    return str(value)


WEBHOOK_SCHEMA = vol.Schema({
    vol.Required("url", description="where alerts are POSTed: an http:// or https:// URL"): check_url,
    vol.Required("secret", description="the HMAC-SHA256 key of X-Pentora-Signature (16+ characters)"):
        check_secret,
    vol.Optional("min_severity", default="info",
                 description="findings below this severity are left out of this webhook's alerts"):
        check_severity,
    vol.Optional("headers", default={}, description="extra request headers (e.g. an Authorization)"):
        check_headers,
    vol.Optional("name", description="how the delivery log and the logs name this webhook"): Str(),
})


def redact(url: str) -> str:
    """The URL as logs and the delivery log show it: no user, password or query (either may
    hold a credential)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return urllib.parse.urlunsplit((parts.scheme, host + port, parts.path, "", ""))


@dataclass(frozen=True, repr=False)
class Webhook:
    url: str
    secret: str = field(repr=False)
    min_severity: str = "info"
    headers: dict[str, str] = field(default_factory=dict, repr=False, hash=False)
    name: str | None = None

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> Webhook:
        """A webhook from its config entry (``WEBHOOK_SCHEMA``; raises ``vol.Invalid``)."""
        return cls(**WEBHOOK_SCHEMA(data))

    @property
    def label(self) -> str:
        return self.name or redact(self.url)

    def __repr__(self) -> str:  # the URL's query and user may be credentials, as the secret is
        return f"Webhook({redact(self.url)!r}, min_severity={self.min_severity!r}, name={self.name!r})"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Pentora-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, signature: str, timestamp: str, body: bytes, *, tolerance: float = 300.0,
           now: float | None = None) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass
class Delivery:
    """One event to one webhook, and what became of it."""

    id: str
    webhook: Webhook
    event: str
    body: bytes = field(repr=False)
    status: str = "queued"  # queued, retrying, delivered, failed, dropped
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    tries: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "webhook": self.webhook.label, "url": redact(self.webhook.url),
                "event": self.event, "status": self.status, "created": self.created.isoformat(),
                "attempts": len(self.tries), "tries": [dict(t) for t in self.tries],
                "error": self.error}


class _FailedError(Exception):
    """A try that would fail again the same way; ``code``: the HTTP status, if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class _RetryError(_FailedError):
    """A try that may succeed later; ``after``: the receiver's Retry-After, in seconds."""

    def __init__(self, message: str, code: int | None = None, after: float | None = None) -> None:
        super().__init__(message, code)
        self.after = after


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx reaches the caller as an HTTPError


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class WebhookSender:
    """Delivers events to webhooks from ``workers`` greenlets fed by a queue of at most
    ``queue_size`` deliveries (more are dropped with a warning: an alert is worth less than
    the scans that produce it).

    A delivery is tried up to ``max_tries`` times within ``max_total`` seconds; it is tried
    again after a connection error, a timeout, 429 or 5xx, waiting the receiver's
    ``Retry-After`` or else ``base_delay`` doubled at each try (at most ``max_delay``), with
    the upper half of that wait random ("equal jitter") so that retries of many servers
    spread. The last ``log_size`` deliveries are kept for ``deliveries()``.
    """

    def __init__(self, webhooks: Iterable[Webhook], *, queue_size: int = 100, workers: int = 2,
                 max_tries: int = 5, max_total: float = 600.0, base_delay: float = 1.0,
                 max_delay: float = 300.0, timeout: float = 10.0, log_size: int = 200,
                 ssl_context: ssl.SSLContext | None = None,
                 rand: Callable[[], float] = random.random) -> None:
        import gevent.queue

        self.webhooks = list(webhooks)
        self.max_tries, self.max_total = max_tries, max_total
        self.base_delay, self.max_delay, self.timeout = base_delay, max_delay, timeout
        self.rand = rand
        self.queue: gevent.queue.JoinableQueue = gevent.queue.JoinableQueue(maxsize=queue_size)
        self.log: collections.deque[Delivery] = collections.deque(maxlen=log_size)
        self._workers = workers
        self._greenlets: list[Any] = []
        handlers: list[Any] = [_NoRedirect()]
        if ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
        self._opener = urllib.request.build_opener(*handlers)

    def start(self) -> None:
        import gevent

        while len(self._greenlets) < self._workers:
            self._greenlets.append(gevent.spawn(self._work))

    def stop(self) -> None:
        import gevent

        gevent.killall(self._greenlets)
        self._greenlets = []

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every queued delivery is done; False if ``timeout`` came first."""
        return bool(self.queue.join(timeout))

    def deliveries(self) -> list[dict[str, Any]]:
        """The delivery log, newest first (the secret and the headers never appear)."""
        return [d.to_dict() for d in reversed(self.log)]

    def send(self, event: dict[str, Any]) -> list[Delivery]:
        """Queue ``event`` for each webhook (an alert's findings cut to the webhook's
        ``min_severity``; a webhook left with nothing gets nothing). Never waits."""
        import gevent.queue

        queued = []
        for webhook in self.webhooks:
            body = event
            if isinstance(event.get("changes"), dict):
                kept = at_severity(event["changes"], webhook.min_severity)
                if kept is None:
                    continue
                body = event | {"changes": kept,
                                "summary": {k: len(v) for k, v in kept.items()}}
            data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
            delivery = Delivery(uuid.uuid4().hex, webhook, str(event.get("event", "")), data)
            self.log.append(delivery)
            try:
                self.queue.put_nowait(delivery)
            except gevent.queue.Full:
                delivery.status = "dropped"
                delivery.error = f"the delivery queue is full ({self.queue.maxsize})"
                log.warning("webhook {}: {} event dropped: {} deliveries are waiting already",
                            webhook.label, delivery.event, self.queue.maxsize)
                continue
            queued.append(delivery)
        return queued

    def _work(self) -> None:
        while True:
            delivery = self.queue.get()
            try:
                self.deliver(delivery)
            finally:
                self.queue.task_done()

    def deliver(self, delivery: Delivery) -> None:
        """Try ``delivery`` until it is delivered, fails for good, or runs out of tries or time."""
        import gevent

        start = time.monotonic()
        label = delivery.webhook.label
        while True:
            left = self.max_total - (time.monotonic() - start)
            attempt: dict[str, Any] = {"at": dt.datetime.now(dt.UTC).isoformat()}
            delivery.tries.append(attempt)
            try:
                attempt["status"] = self._post(delivery, min(self.timeout, max(left, 0.1)))
            except _RetryError as e:
                attempt.update(status=e.code, error=str(e))
                wait = self._wait(len(delivery.tries), e.after)
                left = self.max_total - (time.monotonic() - start)
                give_up = self._give_up(len(delivery.tries), wait, left, e.after)
                if give_up:
                    delivery.status, delivery.error = "failed", f"{e}; {give_up}"
                    log.warning("webhook {}: delivery {} failed: {}", label, delivery.id, delivery.error)
                    return
                attempt["retry_in"] = round(wait, 3)
                delivery.status = "retrying"
                log.info("webhook {}: {}; try {} in {:.2f} s", label, e, len(delivery.tries) + 1, wait)
                gevent.sleep(wait)
                continue
            except _FailedError as e:
                attempt.update(status=e.code, error=str(e))
                delivery.status, delivery.error = "failed", str(e)
                log.warning("webhook {}: delivery {} failed: {}", label, delivery.id, e)
                return
            delivery.status, delivery.error = "delivered", None
            return

    def _wait(self, tries: int, after: float | None) -> float:
        if after is not None:
            return after
        step = min(self.max_delay, self.base_delay * 2 ** (tries - 1))
        return step / 2 + self.rand() * step / 2

    def _give_up(self, tries: int, wait: float, left: float, after: float | None) -> str | None:
        if tries >= self.max_tries:
            return f"gave up after {tries} tries"
        if after is not None and after > self.max_delay:
            return f"Retry-After {after:.0f} s is longer than max_delay {self.max_delay:.0f} s"
        if wait >= left:
            return f"gave up after {tries} tries: the next would pass the {self.max_total:.0f} s limit"
        return None

    def _post(self, delivery: Delivery, timeout: float) -> int:
        """One try: the HTTP status of a 2xx answer, else ``_RetryError`` or ``_FailedError``."""
        webhook = delivery.webhook
        stamp = str(int(time.time()))  # signed again at each try, as its timestamp changes
        headers = {**webhook.headers, "Content-Type": "application/json",
                   "User-Agent": f"pentora/{__version__}", EVENT: delivery.event,
                   DELIVERY: delivery.id, TIMESTAMP: stamp,
                   SIGNATURE: sign(webhook.secret, stamp, delivery.body)}
        request = urllib.request.Request(webhook.url, data=delivery.body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=timeout) as answer:
                answer.read(RESPONSE_READ)
                return int(answer.status)
        except urllib.error.HTTPError as e:
            code = e.code
            after = retry_after(e.headers.get("Retry-After")) if e.headers else None
            e.close()
            if code == 429 or code >= 500:
                raise _RetryError(f"HTTP {code}", code, after) from None
            if 300 <= code < 400:
                raise _FailedError(f"HTTP {code}: redirects are not followed; configure the final URL",
                                   code) from None
            raise _FailedError(f"HTTP {code}", code) from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, ssl.SSLCertVerificationError):
                raise _FailedError(f"TLS certificate not trusted: {e.reason.verify_message}") from None
            raise _RetryError(f"cannot connect: {e.reason}") from None
        except (TimeoutError, OSError) as e:  # a timeout or reset after the connection was made
            raise _RetryError(f"no answer: {e or type(e).__name__}") from None
