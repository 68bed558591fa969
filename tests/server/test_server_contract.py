"""The API contract (schemathesis, ``contract_app.py``) run inside a fresh network
namespace that holds only its loopback: no request the fuzzing makes, and no scan it
submits, can leave, whatever the server's checks do."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pentora.testing import network_namespace

HERE = Path(__file__).parent


def test_every_route_answers_as_its_openapi_document_says(tmp_path):
    with network_namespace("pentora-contract") as ns:
        routes = ns.run("ip", "route", "show").stdout + ns.run("ip", "-6", "route", "show").stdout
        assert "default" not in routes, routes  # nowhere to go but lo
        env = {**os.environ, "PENTORA_CONTRACT_STATE": str(tmp_path / "state")}
        proc = ns.run(sys.executable, "-m", "pytest", str(HERE / "contract_app.py"), "-q",
                      "-p", "no:cacheprovider", "-p", "no:randomly", "--rootdir", str(HERE.parent.parent),
                      check=False, env=env, cwd=str(tmp_path), timeout=600)
    print(proc.stdout[-5000:], proc.stderr[-2000:])
    assert proc.returncode == 0, proc.stdout[-20000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout
