"""The service-scan profile against real daemons from Debian's packages on 127.0.0.1.

openssh-server, nginx, redis-server, vsftpd and postgresql are installed (apt-get, with
service start-up forbidden) when missing, each started by ``daemons.py`` with a config of
its own on a free port of 127.0.0.1, and scanned once through the CLI::

    python -m pentora scan --targets 127.0.0.1 -p PORTS --profile service-scan -o OUT.jsonl

Each port's ``service`` record must name the service and product, and the version where
the daemon reveals it before authentication, against the installed package's upstream
version (``dpkg-query``). PostgreSQL says nothing of its version before authentication:
its version is checked only if one is reported. Without root or apt-get the daemon tests
skip with the reason; without the profile's module types they fail.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from . import daemons

pytestmark = pytest.mark.integration


@dataclass
class Scan:
    daemons: dict[str, daemons.Daemon]
    done: subprocess.CompletedProcess[str]
    services: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    banners: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


def _by_port(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        found.setdefault(int(r["port"]), []).append(r)
    return found


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    reason = daemons.ensure_packages()
    if reason:
        pytest.skip(f"real daemons unavailable: {reason}")
    missing = daemons.missing_modules()
    if missing:
        pytest.fail(f"`pentora modules list` lacks {', '.join(missing)}: the service-scan profile "
                    "cannot run")
    out = tmp_path_factory.mktemp("real-daemons") / "scan.jsonl"
    with daemons.all_daemons() as running:
        done = daemons.pentora_scan([d.port for d in running], out)
    result = Scan({d.name: d for d in running}, done,
                  _by_port(daemons.jsonl_records(out, "service")),
                  _by_port(daemons.jsonl_records(out, "banner")))
    yield result


def test_service_scan_modules_are_registered() -> None:
    missing = daemons.missing_modules()
    assert not missing, (f"`pentora modules list` lacks {', '.join(missing)}: the service-scan "
                         "profile cannot run")


def test_scan_of_real_daemons_succeeds(scan: Scan) -> None:
    assert scan.done.returncode == 0, f"exit {scan.done.returncode}\n{scan.done.stderr[-3000:]}"


def test_only_the_daemons_ports_are_reported(scan: Scan) -> None:
    assert set(scan.services) <= {d.port for d in scan.daemons.values()}


@pytest.mark.parametrize("name", list(daemons.DAEMONS))
def test_real_daemon_is_named_right(scan: Scan, name: str) -> None:
    daemon = scan.daemons[name]
    records = scan.services.get(daemon.port, [])
    sent = [(b.get("probe"), str(b.get("data", ""))[:300]) for b in scan.banners.get(daemon.port, [])]
    context = (f"{name} ({daemon.package} {daemon.package_version}) on port {daemon.port}; "
               f"banners: {sent}")
    assert len(records) == 1, f"expected one service record, got {records}; {context}"
    found = records[0]
    service_ok, product_ok, version_ok = daemon.judge(found.get("service"), found.get("product"),
                                                      found.get("version"))
    named = " ".join(f"{k}={found.get(k)!r}" for k in ("service", "product", "version"))
    assert service_ok, f"service should be {daemon.service!r}: {named}; {context}"
    assert product_ok, f"product should be {daemon.product!r}: {named}; {context}"
    if daemon.expected_version is not None:
        assert version_ok, f"version should be {daemon.upstream_version!r}: {named}; {context}"
    else:
        assert version_ok in (None, True), (f"{name} does not reveal its version, yet a wrong one was "
                                            f"reported (installed {daemon.upstream_version}): {named}")


def test_daemons_start_and_stop_on_loopback() -> None:
    """Each daemon listens on 127.0.0.1 only while its context is open."""
    if reason := daemons.ensure_packages():
        pytest.skip(f"real daemons unavailable: {reason}")
    import socket

    for name, start in daemons.DAEMONS.items():
        began = time.monotonic()
        with start() as daemon:
            assert time.monotonic() - began < daemons.START_TIMEOUT
            assert daemon.package_version, name
        with socket.socket() as s:
            assert s.connect_ex((daemons.HOST, daemon.port)) != 0, f"{name} still listens after stop"
