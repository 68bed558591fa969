"""The server as it is deployed: over TLS (``--cert/--key``) and under gunicorn's gevent
worker (``pentora_plugins.server.wsgi:app()``), each on 127.0.0.1 with real requests."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pentora.testing import free_port
from tests.plugins._httpd import self_signed
from tests.server.test_server_api import DAG, PENTORA

BIN = Path(sys.executable).parent


def _token(state: Path, scope: str) -> str:
    return subprocess.run([PENTORA, "server", "token", "create", "--scope", scope, "--state",
                           str(state)], capture_output=True, text=True, check=True).stdout.strip()


def _call(url: str, token: str | None = None, body: Any = None,
          context: ssl.SSLContext | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _until_up(url: str, proc: subprocess.Popen[Any], log: Path,
              context: ssl.SSLContext | None = None) -> None:
    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    while time.monotonic() < deadline:
        try:
            _call(f"{url}/health", context=context)
            return
        except OSError:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
    pytest.fail(f"the server did not answer: {log.read_text()}")


def _stop(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_tls_serves_https_and_still_wants_a_token(tmp_path):
    cert, key = self_signed(tmp_path)
    state, port, log = tmp_path / "state", free_port(), tmp_path / "server.log"
    token = _token(state, "scan")
    (tmp_path / "server.yaml").write_text(f"store: {tmp_path / 'scans.db'}\n")
    with log.open("w") as out:
        proc = subprocess.Popen([PENTORA, "server", "--bind", f"127.0.0.1:{port}", "--state",
                                 str(state), "--config", str(tmp_path / "server.yaml"),
                                 "--cert", str(cert), "--key", str(key)], stdout=out, stderr=out)
    url = f"https://127.0.0.1:{port}/api/v1"
    trusted = ssl.create_default_context(cafile=str(cert))  # verifies the chain and 127.0.0.1
    try:
        _until_up(url, proc, log, trusted)
        assert _call(f"{url}/health", context=trusted) == (200, {"status": "ok"})
        status, answer = _call(f"{url}/scans", context=trusted)
        assert status == 401 and "token" in answer["error"]
        assert _call(f"{url}/scans", token, context=trusted)[0] == 200
        status, answer = _call(f"{url}/scans", token, {"targets": "127.0.0.1", "dag": DAG},
                               context=trusted)
        assert status == 201, answer
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            _call(f"{url}/health", context=ssl.create_default_context())
        with pytest.raises(OSError):  # plain HTTP gets no answer from a TLS port
            _call(f"http://127.0.0.1:{port}/api/v1/health")
        assert "pentora server on https://127.0.0.1" in log.read_text()
    finally:
        _stop(proc)
    assert token not in log.read_text()


def test_the_wsgi_app_runs_a_scan_under_gunicorns_gevent_worker(tmp_path, tcp_server):
    gunicorn = BIN / "gunicorn"
    if not gunicorn.exists():
        gunicorn = Path(shutil.which("gunicorn") or "")
    if not gunicorn.is_file():
        pytest.skip("gunicorn is not installed (pip install -e '.[test]' brings it)")
    listener = tcp_server(banner=b"hi\r\n")
    state, port, log = tmp_path / "state", free_port(), tmp_path / "gunicorn.log"
    token = _token(state, "scan")
    (tmp_path / "server.yaml").write_text(f"store: {tmp_path / 'scans.db'}\n")
    env = {**os.environ, "PENTORA_SERVER_CONFIG": str(tmp_path / "server.yaml"),
           "PENTORA_SERVER_STATE": str(state)}
    with log.open("w") as out:
        proc = subprocess.Popen([str(gunicorn), "-k", "gevent", "-w", "1", "-b",
                                 f"127.0.0.1:{port}", "pentora_plugins.server.wsgi:app()"],
                                stdout=out, stderr=out, env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/api/v1"
    try:
        _until_up(url, proc, log)
        assert _call(f"{url}/scans")[0] == 401
        status, answer = _call(f"{url}/scans", token, {"targets": "127.0.0.1", "dag": DAG,
                                                       "vars": {"ports": str(listener.port)}})
        assert status == 201, answer
        scan_id = answer["id"]
        deadline = time.monotonic() + 60  # a hang guard
        while time.monotonic() < deadline:
            shown = _call(f"{url}/scans/{scan_id}", token)[1]
            if shown["scan"]["status"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert shown["scan"]["status"] == "completed" and shown["counts"]["port"] == 1, shown
    finally:
        _stop(proc)
    assert token not in log.read_text()
