"""Webhook deliveries of ``pentora server`` against a real HTTP receiver on 127.0.0.1 (a
thread of the standard library's http.server): the signature, the retries and their
waits, Retry-After, giving up, the bounded queue, and what the logs never show."""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
from pentora_plugins.server import _webhooks as wh
from pentora_plugins.server._alerts import alert, changes

from pentora import logger

SECRET = "s3cret-for-the-tests-0123456789"
HANG_GUARD = 30.0  # seconds: only says the deliveries ended at all


class Receiver:
    """Answers each POST with the next scripted (status, headers, delay), then 200."""

    def __init__(self, script: list[tuple[int, dict[str, str], float]] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"at": time.monotonic(), "headers": dict(self.headers),
                                          "body": body, "path": self.path})
                status, headers, delay = receiver.script.pop(0) if receiver.script else (200, {}, 0.0)
                time.sleep(delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=in-the-query"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def logs() -> Iterator[list[str]]:
    said: list[str] = []
    logger.enable("pentora_plugins")
    sink = logger.add(lambda m: said.append(str(m)), level="DEBUG")
    yield said
    logger.remove(sink)
    logger.disable("pentora_plugins")


def sender(url: str, **kw: Any) -> wh.WebhookSender:
    hook = wh.Webhook.from_config({"url": url, "secret": SECRET, **kw.pop("hook", {})})
    kw.setdefault("base_delay", 0.2)
    s = wh.WebhookSender([hook], **kw)
    s.start()
    return s


def the_alert(**kw: Any) -> dict[str, Any]:
    old = [{"kind": "port", "host": "127.0.0.1", "port": 22, "protocol": "tcp", "state": "open"}]
    new = old + [{"kind": "port", "host": "127.0.0.1", "port": 8080, "protocol": "tcp", "state": "open"},
                 {"kind": "vulnerability", "host": "127.0.0.1", "port": 8080, "id": "PENTORA-X",
                  "severity": "high", "title": "x"},
                 {"kind": "vulnerability", "host": "127.0.0.1", "port": 8080, "id": "PENTORA-Y",
                  "severity": "low", "title": "y"}]
    found = changes(old, new)
    assert found is not None
    return alert({"id": "sch1", "name": "nightly"}, "scan-a", "scan-b", found, **kw)


def deliver(s: wh.WebhookSender, event: dict[str, Any]) -> dict[str, Any]:
    queued = s.send(event)
    assert len(queued) == 1
    assert s.join(HANG_GUARD), "the delivery did not end"
    s.stop()
    return s.deliveries()[0]


def test_the_alert_is_posted_signed_and_the_signature_verifies_with_the_secret_only(receiver) -> None:
    event = the_alert()
    done = deliver(sender(receiver.url), event)
    assert done["status"] == "delivered" and done["attempts"] == 1
    (req,) = receiver.requests
    body, headers = req["body"], req["headers"]
    assert json.loads(body) == event
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Pentora-Event"] == "scan.changes"
    assert headers["X-Pentora-Delivery"] == done["id"]
    stamp, signature = headers["X-Pentora-Timestamp"], headers["X-Pentora-Signature"]
    assert abs(int(stamp) - time.time()) < HANG_GUARD
    assert wh.verify(SECRET, signature, stamp, body)
    assert not wh.verify("another-secret-of-the-same-size", signature, stamp, body)
    assert not wh.verify(SECRET, signature, stamp, body.replace(b"8080", b"8081"))
    assert not wh.verify(SECRET, signature, str(int(stamp) + 1), body)
    assert not wh.verify(SECRET, signature, stamp, body, now=int(stamp) + 301)  # a replay, later
    # By hand, as a receiver in another language would: HMAC-SHA256 over "TIMESTAMP.BODY".
    mine = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={mine}"


def test_500_twice_then_200_is_three_tries_with_growing_waits() -> None:
    r = Receiver([(500, {}, 0.0), (502, {}, 0.0)])
    try:
        done = deliver(sender(r.url, base_delay=0.2, rand=lambda: 0.5), the_alert())
    finally:
        r.close()
    assert done["status"] == "delivered" and done["attempts"] == 3
    assert [t.get("status") for t in done["tries"]] == [500, 502, 200]
    # equal jitter: half the step fixed, half random (0.5 here) → 0.15 s, then 0.3 s
    assert [t.get("retry_in") for t in done["tries"][:2]] == [0.15, 0.3]
    at = [req["at"] for req in r.requests]
    assert len({req["headers"]["X-Pentora-Delivery"] for req in r.requests}) == 1
    first, second = at[1] - at[0], at[2] - at[1]
    assert first >= 0.1 and second >= 0.2  # at least each step's fixed half


def test_retry_after_is_honoured() -> None:
    r = Receiver([(429, {"Retry-After": "1"}, 0.0)])
    try:
        done = deliver(sender(r.url, base_delay=0.01), the_alert())
    finally:
        r.close()
    assert done["status"] == "delivered" and done["attempts"] == 2
    assert done["tries"][0]["retry_in"] == 1.0
    assert r.requests[1]["at"] - r.requests[0]["at"] >= 1.0  # not the 0.01 s backoff


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    assert wh.retry_after("120") == 120.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert wh.retry_after(date, now=now) == 30.0
    assert wh.retry_after("soon") is None and wh.retry_after(None) is None


def test_a_retry_after_longer_than_max_delay_gives_up_at_once(receiver) -> None:
    receiver.script = [(503, {"Retry-After": "3600"}, 0.0)]
    done = deliver(sender(receiver.url, max_delay=60), the_alert())
    assert done["status"] == "failed" and done["attempts"] == 1
    assert "Retry-After 3600 s is longer than max_delay 60 s" in done["error"]


def test_it_gives_up_after_max_tries_and_the_log_says_so(receiver) -> None:
    receiver.script = [(500, {}, 0.0)] * 5
    done = deliver(sender(receiver.url, max_tries=3, base_delay=0.05), the_alert())
    assert len(receiver.requests) == 3
    assert done["status"] == "failed" and done["attempts"] == 3
    assert [t["status"] for t in done["tries"]] == [500, 500, 500]
    assert done["error"] == "HTTP 500; gave up after 3 tries"


def test_it_gives_up_when_the_next_wait_would_pass_max_total(receiver) -> None:
    receiver.script = [(500, {}, 0.0)] * 5
    done = deliver(sender(receiver.url, max_tries=10, base_delay=2.0, max_total=1.0), the_alert())
    assert len(receiver.requests) == 1 and done["status"] == "failed"
    assert "the next would pass the 1 s limit" in done["error"]


def test_a_4xx_is_not_retried_and_a_redirect_not_followed(receiver) -> None:
    receiver.script = [(404, {}, 0.0)]
    done = deliver(sender(receiver.url), the_alert())
    assert (done["status"], done["attempts"], done["error"]) == ("failed", 1, "HTTP 404")
    elsewhere = Receiver()
    try:
        receiver.script = [(307, {"Location": elsewhere.url}, 0.0)]
        done = deliver(sender(receiver.url), the_alert())
        assert done["status"] == "failed" and "redirects are not followed" in done["error"]
        assert elsewhere.requests == []
    finally:
        elsewhere.close()


def test_a_timeout_is_retried(receiver) -> None:
    receiver.script = [(200, {}, 1.5)]
    done = deliver(sender(receiver.url, timeout=0.3, base_delay=0.05), the_alert())
    assert done["status"] == "delivered" and done["attempts"] == 2
    assert "no answer" in done["tries"][0]["error"] or "cannot connect" in done["tries"][0]["error"]


def test_a_refused_connection_is_retried_then_given_up(closed_tcp_port: int) -> None:
    done = deliver(sender(f"http://127.0.0.1:{closed_tcp_port}/", max_tries=2, base_delay=0.05),
                   the_alert())
    assert done["status"] == "failed" and done["attempts"] == 2
    assert "cannot connect" in done["error"] and "gave up after 2 tries" in done["error"]


def test_a_full_queue_drops_with_a_warning_and_send_never_waits(receiver, logs) -> None:
    hook = wh.Webhook.from_config({"url": receiver.url, "secret": SECRET, "name": "ops"})
    s = wh.WebhookSender([hook], queue_size=2)  # not started: nothing takes from the queue
    queued = [s.send(the_alert()) for _ in range(3)]
    assert [len(q) for q in queued] == [1, 1, 0]
    assert [d["status"] for d in s.deliveries()] == ["dropped", "queued", "queued"]
    assert any("webhook ops: scan.changes event dropped" in line and "WARNING" in line for line in logs)
    s.start()
    assert s.join(HANG_GUARD)
    s.stop()
    assert len(receiver.requests) == 2
    assert [d["status"] for d in s.deliveries()] == ["dropped", "delivered", "delivered"]


def test_each_webhook_gets_the_findings_at_its_severity(receiver) -> None:
    hooks = [wh.Webhook.from_config({"url": receiver.url, "secret": SECRET, "min_severity": level})
             for level in ("info", "high", "critical")]
    s = wh.WebhookSender(hooks)
    s.start()
    s.send(the_alert())
    assert s.join(HANG_GUARD)
    s.stop()
    got = sorted((json.loads(r["body"])["changes"] for r in receiver.requests),
                 key=lambda c: -len(c["new_findings"]))
    assert [[f["id"] for f in c["new_findings"]] for c in got] == [["PENTORA-X", "PENTORA-Y"],
                                                                    ["PENTORA-X"], []]
    # port changes are not findings: the critical-only webhook still hears of the new port
    assert [[p["port"] for p in c["new_ports"]] for c in got] == [[8080]] * 3


def test_a_webhook_left_with_nothing_gets_nothing(receiver) -> None:
    old = [{"kind": "vulnerability", "host": "127.0.0.1", "port": 80, "id": "A", "severity": "low"}]
    found = changes(old, [])
    assert found is not None
    s = sender(receiver.url, hook={"min_severity": "medium"})
    assert s.send(alert({"id": "s", "name": "n"}, "a", "b", found)) == []
    s.stop()
    assert receiver.requests == []


def test_the_secret_the_headers_and_the_query_never_reach_a_log(receiver, logs) -> None:
    receiver.script = [(500, {}, 0.0)] * 3
    s = sender(receiver.url, max_tries=2, base_delay=0.05,
               hook={"headers": {"Authorization": "Bearer hdr-token-xyz"}})
    deliver(s, the_alert())
    assert receiver.requests[0]["headers"]["Authorization"] == "Bearer hdr-token-xyz"
    shown = "\n".join(logs) + json.dumps(s.deliveries()) + repr(s.webhooks)
    assert "HTTP 500" in shown and "/hook" in shown
    for secret in (SECRET, "hdr-token-xyz", "in-the-query"):
        assert secret not in shown


@pytest.mark.parametrize("entry, message", [
    ({"url": "ftp://127.0.0.1/x"}, "scheme 'ftp' is not allowed; a webhook URL starts with http://"),
    ({"url": "file:///etc/passwd"}, "scheme 'file' is not allowed"),
    ({"url": "http:///path"}, "no host"),
    ({"secret": "short"}, "a secret of at least 16 characters"),
    ({"min_severity": "severe"}, "expected one of info, low, medium, high, critical, got 'severe'"),
    ({"headers": {"X-Pentora-Signature": "x"}}, "is set by pentora; remove it"),
    ({"headers": {"X-Ok": "a\r\nInjected: 1"}}, "expected a one-line string value"),
])
def test_a_bad_webhook_entry_names_the_key_and_the_fix(entry: dict[str, Any], message: str) -> None:
    data = {"url": "https://127.0.0.1/hook", "secret": SECRET} | entry
    with pytest.raises(vol.MultipleInvalid) as e:
        wh.Webhook.from_config(data)
    key = next(iter(entry))
    assert str(e.value.errors[0].path[0]) == key
    assert message in str(e.value)
    assert "short" not in str(e.value) or key != "secret"  # a bad secret is not repeated


def test_the_alert_time_is_utc_iso() -> None:
    when = dt.datetime(2024, 6, 2, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert the_alert(when=when)["time"] == "2024-06-02T12:00:00+00:00"


def test_the_verification_example_of_the_docs_accepts_a_real_delivery(receiver) -> None:
    page = (Path(__file__).parents[2] / "docs" / "server-alerts.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", page, re.S)
    space: dict[str, Any] = {}
    exec(code, space)  # noqa: S102 - the documentation's own example, run as a reader would
    deliver(sender(receiver.url), the_alert())
    (req,) = receiver.requests
    assert space["verified"](SECRET, req["headers"], req["body"])
    assert not space["verified"]("another-secret-of-the-same-size", req["headers"], req["body"])
