"""Several nodes feed the one ``vulnerabilities`` key: merged, one per (host, port, id),
each announced once, whatever order the nodes end in."""

from __future__ import annotations

from typing import Any

import gevent
from pentora_plugins.kit.findings import add_vulnerabilities, severity_of
from pentora_plugins.kit.records import Vulnerability

from pentora import Module
from pentora.testing import RecordCollector
from tests.conftest import make_orch


def finding(host: str, port: int | None, vid: str) -> Vulnerability:
    return Vulnerability(host=host, port=port, id=vid, severity="low", source="test")


class _Feeder(Module):
    produces = ("vulnerabilities",)
    found: tuple[Vulnerability, ...] = ()

    def run(self, ctx: Any, config: dict[str, Any]) -> None:
        gevent.sleep(0.01)  # both feeders are running when the first one merges
        add_vulnerabilities(ctx, self.found)


class CheckA(_Feeder):
    module_type = "check_a"
    found = (finding("127.0.0.2", 80, "X-1"), finding("127.0.0.1", 22, "X-2"),
             finding("127.0.0.1", 22, "X-2"))


class CheckB(_Feeder):
    module_type = "check_b"
    found = (finding("127.0.0.1", 22, "X-2"), finding("127.0.0.1", None, "X-0"))


def test_two_nodes_merge_into_one_sorted_list_each_finding_announced_once() -> None:
    emitted = RecordCollector()
    orch = make_orch(CheckA, CheckB, plugins=(emitted,))
    orch.load_dag({"name": "f", "nodes": [{"instance_id": "a", "module_type": "check_a"},
                                          {"instance_id": "b", "module_type": "check_b"}]})
    result = orch.execute()
    assert result.ok
    merged = [(v.host, v.port, v.id) for v in result.context.get("vulnerabilities")]
    assert merged == [("127.0.0.1", None, "X-0"), ("127.0.0.1", 22, "X-2"), ("127.0.0.2", 80, "X-1")]
    announced = sorted((r.host, r.port or 0, r.id) for kind, r in emitted.records
                       if kind == "vulnerability")
    assert announced == [("127.0.0.1", 0, "X-0"), ("127.0.0.1", 22, "X-2"), ("127.0.0.2", 80, "X-1")]


def test_severity_follows_cvss_v3_ratings() -> None:
    assert [severity_of(s) for s in (None, 0.0, 3.9, 4.0, 6.9, 7.0, 8.9, 9.0, 10.0)] == [
        "info", "info", "low", "medium", "medium", "high", "high", "critical", "critical"]
