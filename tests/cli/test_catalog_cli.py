"""``pentora catalog update | status`` end to end, in subprocesses, against feeds served by
an HTTP server on 127.0.0.1 that honours conditional requests and records every request's
headers: the first update downloads, the next asks If-None-Match / If-Modified-Since and
keeps the file on 304, a corrupt download (bad checksum, truncated gzip, invalid JSON)
keeps the previous copy and fails naming the feed, and ``status`` says what is cached."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pentora_plugins.cve.sources import load_catalog

FEEDS = Path(__file__).resolve().parent.parent / "data" / "feeds"
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"


class FeedServer:
    """Serves ``files`` (path → bytes) on 127.0.0.1 with an ETag (the body's sha256) and a
    fixed Last-Modified; answers 304 to a request whose If-None-Match is the ETag."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                owner.requests.append((self.path, dict(self.headers.items())))
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", LAST_MODIFIED)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def headers_of(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.requests if p == path]


def nvd_feed() -> bytes:
    cve = {"id": "CVE-2024-6387", "vulnStatus": "Analyzed",
           "descriptions": [{"lang": "en", "value": "A signal handler race condition in sshd."}],
           "metrics": {"cvssMetricV31": [{"type": "Primary", "cvssData": {"baseScore": 8.1}}]},
           "configurations": [{"nodes": [{"operator": "OR", "cpeMatch": [
               {"vulnerable": True, "criteria": "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*",
                "versionStartIncluding": "8.5", "versionEndExcluding": "9.8"}]}]}]}
    return json.dumps({"format": "NVD_CVE", "version": "2.0", "vulnerabilities": [{"cve": cve}]}).encode()


def nvd_meta(raw: bytes) -> bytes:
    return (f"lastModifiedDate:2025-01-10T03:00:01-05:00\r\nsize:{len(raw)}\r\n"
            f"gzSize:{len(gzip.compress(raw))}\r\nsha256:{hashlib.sha256(raw).hexdigest().upper()}\r\n").encode()


def osv_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("osv_usn.json", "osv_dsa.json"):
            z.writestr(name, (FEEDS / name).read_bytes())
    return buf.getvalue()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib would send even 127.0.0.1 through a proxy the environment names: the feeds
    are asked of the local server directly, and nothing leaves the machine."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer()
    raw = nvd_feed()
    srv.files.update({
        "/kev.json": (FEEDS / "kev.json").read_bytes(),
        "/tracker/data/json": (FEEDS / "debian_tracker.json").read_bytes(),
        "/Ubuntu/all.zip": osv_zip(),
        "/nvd/nvdcve-2.0-modified.json.gz": gzip.compress(raw),
        "/nvd/nvdcve-2.0-modified.meta": nvd_meta(raw),
    })
    try:
        yield srv
    finally:
        srv.stop()


def config(tmp_path: Path, server: FeedServer) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(f"""feeds:
  kev: {{url: "{server.base}/kev.json"}}
  debian-tracker: {{url: "{server.base}/tracker/data/json"}}
  osv-ubuntu: {{url: "{server.base}/Ubuntu/all.zip"}}
  nvd-modified:
    url: "{server.base}/nvd/nvdcve-2.0-modified.json.gz"
    checksum: nvd-meta
""", encoding="utf-8")
    return path


def cached(cache: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(cache.iterdir()) if p.name != "state.json"}


def test_update_downloads_then_asks_conditionally_and_keeps_the_file_on_304(
        run_cli: Any, tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    args = ("catalog", "update", "--config", str(config(tmp_path, server)), "--cache-dir", str(cache))
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "kev: downloaded (0 entries, 0 statements, 3 KEV ids)" in first.stdout
    assert "debian-tracker: downloaded (0 entries, 5 statements, 0 KEV ids)" in first.stdout
    assert "osv-ubuntu: downloaded (0 entries, 3 statements, 0 KEV ids)" in first.stdout
    assert "nvd-modified: downloaded (1 entries, 0 statements, 0 KEV ids)" in first.stdout
    files = cached(cache)
    assert set(files) == {"kev.json", "debian-tracker.json", "osv-ubuntu.zip", "nvd-modified.json.gz"}
    assert not [p for p in cache.iterdir() if p.name.endswith(".partial")]
    assert "If-None-Match" not in server.headers_of("/kev.json")[0]
    mtimes = {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.name != "state.json"}

    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count(": not-modified") == 4, second.stdout
    for path in ("/kev.json", "/tracker/data/json", "/Ubuntu/all.zip", "/nvd/nvdcve-2.0-modified.json.gz"):
        again = server.headers_of(path)[-1]
        assert again["If-None-Match"].startswith('"') and again["If-Modified-Since"] == LAST_MODIFIED
    assert cached(cache) == files
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.name != "state.json"} == mtimes

    # what a scan's catalog [builtin, feeds] then reads
    monkeypatch.setenv("PENTORA_FEEDS_DIR", str(cache))
    catalog = load_catalog(["builtin", "feeds"])
    assert {"CVE-2024-6387", "CVE-2021-44228"} <= catalog.kev
    assert catalog.fixes.get("ubuntu", "22.04", "openssh", "CVE-2024-6387") is not None
    assert catalog.fixes.get("debian", "12", "redis", "CVE-2023-45145") is not None


def test_a_changed_feed_is_downloaded_again(run_cli: Any, tmp_path: Path, server: FeedServer) -> None:
    cache = tmp_path / "cache"
    args = ("catalog", "update", "kev", "--config", str(config(tmp_path, server)),
            "--cache-dir", str(cache))
    assert run_cli(*args).returncode == 0
    kev = json.loads(server.files["/kev.json"])
    kev["vulnerabilities"] = kev["vulnerabilities"][:1]
    server.files["/kev.json"] = json.dumps(kev).encode()
    done = run_cli(*args)
    assert done.returncode == 0 and "kev: downloaded (0 entries, 0 statements, 1 KEV ids)" in done.stdout
    assert json.loads((cache / "kev.json").read_bytes()) == kev
    assert [p for p, _ in server.requests] == ["/kev.json", "/kev.json"]  # only the feed asked for


def later_nvd_feed() -> bytes:
    raw = json.loads(nvd_feed())
    raw["timestamp"] = "later"
    return json.dumps(raw).encode()


@pytest.mark.parametrize("name,changes,reason", [
    ("nvd-modified", {"/nvd/nvdcve-2.0-modified.json.gz": gzip.compress(later_nvd_feed()),
                      "/nvd/nvdcve-2.0-modified.meta": nvd_meta(nvd_feed())}, "checksum mismatch"),
    ("nvd-modified", {"/nvd/nvdcve-2.0-modified.json.gz": gzip.compress(later_nvd_feed())[:-40],
                      "/nvd/nvdcve-2.0-modified.meta": nvd_meta(later_nvd_feed())}, "not a valid gzip"),
    ("kev", {"/kev.json": (FEEDS / "kev.json").read_bytes()[:400]}, "not a catalog pentora can read"),
    ("debian-tracker", {"/tracker/data/json": (FEEDS / "debian_tracker.json").read_bytes()
                        .replace(b'"open"', b'"opened"')}, "expected one of resolved"),
    ("osv-ubuntu", {"/Ubuntu/all.zip": osv_zip()[:-30]}, "not a valid zip file"),
])
def test_a_corrupt_download_keeps_the_previous_copy_and_fails_naming_the_feed(
        run_cli: Any, tmp_path: Path, server: FeedServer, name: str, changes: dict[str, bytes],
        reason: str) -> None:
    cache = tmp_path / "cache"
    args = ("catalog", "update", "--config", str(config(tmp_path, server)), "--cache-dir", str(cache))
    assert run_cli(*args).returncode == 0
    before = cached(cache)
    server.files.update(changes)
    done = run_cli(*args)
    assert done.returncode == 3, done.stdout + done.stderr
    line = next(li for li in done.stdout.splitlines() if li.startswith(f"{name}: "))
    assert line.startswith(f"{name}: failed: ") and reason in line and "previous copy is kept" in line
    assert f"1 feed(s) failed to update: {name}" in done.stderr
    assert cached(cache) == before  # the old copy, byte for byte
    assert not [p for p in cache.iterdir() if p.name.endswith(".partial")]
    status = run_cli("catalog", "status", *args[2:])
    assert status.returncode == 0
    block = status.stdout.split(f"\n{name}  ", 1)[1]
    assert "last update failed (" in block.split("\n\n")[0] and reason in block


def test_a_server_that_cuts_the_body_short_fails_the_feed(run_cli: Any, tmp_path: Path) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{\"catalogVersion\": ")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/kev.json"
    try:
        done = run_cli("catalog", "update", "kev", "--source", f"kev={url}",
                       "--cache-dir", str(tmp_path / "cache"), "--timeout", "10")
    finally:
        thread.join(timeout=10)
        listener.close()
    assert done.returncode == 3
    assert "kev: failed: truncated: 19 of 100000 bytes received; nothing is cached for it yet" \
        in done.stdout, done.stdout
    assert not (tmp_path / "cache" / "kev.json").exists()


def test_status_says_what_is_cached(run_cli: Any, tmp_path: Path, server: FeedServer) -> None:
    cache = tmp_path / "cache"
    conf = str(config(tmp_path, server))
    never = run_cli("catalog", "status", "--config", conf, "--cache-dir", str(cache))
    assert never.returncode == 0 and never.stdout.count("never downloaded") == 4
    assert run_cli("catalog", "update", "kev", "--config", conf, "--cache-dir", str(cache)).returncode == 0
    done = run_cli("catalog", "status", "--config", conf, "--cache-dir", str(cache))
    lines = done.stdout.splitlines()
    assert lines[0] == f"feed cache: {cache}"
    at = lines.index(f"kev  {server.base}/kev.json")
    assert lines[at + 1].startswith("  updated 20") and " ago)  ETag \"" in lines[at + 1]
    assert lines[at + 2] == "  0 entries, 0 statements, 3 KEV ids"
    assert done.stdout.count("never downloaded") == 3


def test_source_overrides_and_env_cache_dir(run_cli: Any, tmp_path: Path, server: FeedServer) -> None:
    cache = tmp_path / "env-cache"
    done = run_cli("catalog", "update", "kev", "--source", f"kev={server.base}/kev.json",
                   env={"PENTORA_FEEDS_DIR": str(cache)})
    assert done.returncode == 0, done.stderr
    assert (cache / "kev.json").read_bytes() == server.files["/kev.json"]
    added = run_cli("catalog", "update", "mine", "--source", f"mine={server.base}/kev.json",
                    env={"PENTORA_FEEDS_DIR": str(cache)})
    assert added.returncode == 0 and "mine: downloaded" in added.stdout


def test_a_failed_update_from_another_url_keeps_saying_where_the_copy_came_from(
        run_cli: Any, tmp_path: Path, server: FeedServer) -> None:
    cache = tmp_path / "cache"
    conf = ("--config", str(config(tmp_path, server)), "--cache-dir", str(cache))
    assert run_cli("catalog", "update", "kev", *conf).returncode == 0
    mirror = f"{server.base}/mirror/kev.json"  # not served yet: 404
    for _ in range(2):
        failed = run_cli("catalog", "update", "kev", "--source", f"kev={mirror}", *conf)
        assert failed.returncode == 3 and "kev: failed: HTTP 404" in failed.stdout, failed.stdout
    # the copy kept came from the configured URL: the mirror is asked unconditionally, as
    # the old copy's ETag is no answer of its
    assert [h.get("If-None-Match") for h in server.headers_of("/mirror/kev.json")] == [None, None]
    status = run_cli("catalog", "status", *conf)
    block = status.stdout.split(f"\nkev  {server.base}/kev.json\n", 1)[1].split("\n", 4)
    assert block[1] == "  0 entries, 0 statements, 3 KEV ids", status.stdout
    assert "downloaded from" not in status.stdout  # it came from the configured URL
    assert block[2].startswith("  last update failed (") and f" from {mirror}: HTTP 404" in block[2]


def test_source_alone_updates_only_its_feeds(run_cli: Any, tmp_path: Path, server: FeedServer) -> None:
    """--source kev=MIRROR without names: the other feeds (here on the same local server) are
    not asked; by default they are on the internet."""
    done = run_cli("catalog", "update", "--config", str(config(tmp_path, server)),
                   "--source", f"kev={server.base}/kev.json", "--cache-dir", str(tmp_path / "c"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["kev: downloaded (0 entries, 0 statements, 3 KEV ids)"]
    assert [p for p, _ in server.requests] == ["/kev.json"]


@pytest.mark.parametrize("argv,code,message", [
    (["--source", "kev"], 2, "--source 'kev': expected NAME=URL"),
    (["--source", "kev=file:///etc/passwd"], 2, "expected an http:// or https:// URL"),
    (["nosuchfeed"], 2, "no feed named 'nosuchfeed'"),
    (["--timeout", "0"], 2, "expected seconds between 0 and 86400"),
])
def test_bad_options_are_usage_errors(run_cli: Any, tmp_path: Path, argv: list[str], code: int,
                                      message: str) -> None:
    done = run_cli("catalog", "update", *argv, "--cache-dir", str(tmp_path / "c"))
    assert done.returncode == code and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("text,message", [
    ("feeds:\n  kev: {url: 'ftp://127.0.0.1/kev.json'}\n",
     "feeds.kev.url: expected an http:// or https:// URL"),
    ("feeds:\n  Bad Name: {url: 'http://127.0.0.1/x'}\n", "a feed name is lowercase"),
    ("feeds:\n  kev: {url: 'http://127.0.0.1/x', checksum: md5}\n",
     "feeds.kev.checksum: expected one of nvd-meta"),
    ("feeds: [1, 2\n", "feeds.yaml:"),
])
def test_a_bad_feeds_file_is_refused_naming_it_and_the_key(run_cli: Any, tmp_path: Path, text: str,
                                                           message: str) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    done = run_cli("catalog", "status", "--config", str(path), "--cache-dir", str(tmp_path / "c"))
    assert done.returncode == 1 and str(path) in done.stderr and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
