"""The report model every format renders: merging, deduplication, order, the DAG's layers."""

from __future__ import annotations

from pentora_plugins.output.formats._model import Report, epoch


def _report(*records: dict) -> Report:
    report = Report()
    for r in records:
        report.add(r)
    return report


def test_hosts_merge_every_discovery_methods_record():
    report = _report(
        {"kind": "host", "address": "127.0.0.2", "alive": False, "method": "icmp", "ttl": None},
        {"kind": "host", "address": "127.0.0.2", "alive": True, "method": "tcp_probe", "ttl": 64,
         "reason": "syn-ack"},
        {"kind": "host", "address": "127.0.0.10", "alive": False, "method": "icmp"},
        {"kind": "port", "host": "127.0.0.9", "port": 22, "protocol": "tcp", "state": "open"})
    hosts = {h.address: h for h in report.hosts()}
    assert [h.address for h in report.hosts()] == ["127.0.0.2", "127.0.0.9", "127.0.0.10"]  # numeric
    assert hosts["127.0.0.2"].up and hosts["127.0.0.2"].record["ttl"] == 64
    assert hosts["127.0.0.2"].record["method"] == "icmp"  # the first record's, kept
    assert not hosts["127.0.0.10"].up
    assert hosts["127.0.0.9"].up and hosts["127.0.0.9"].ports == 1  # known only from its port


def test_a_port_found_twice_is_one_port_and_closed_ports_are_left_out():
    port = {"kind": "port", "host": "127.0.0.1", "port": 80, "protocol": "tcp", "state": "open"}
    report = _report(port, {**port, "method": "connect"},
                     {**port, "port": 81, "state": "closed"},
                     {**port, "port": 53, "protocol": "udp", "state": "open|filtered"},
                     {"kind": "service", "host": "127.0.0.1", "port": 8080, "protocol": "tcp",
                      "service": "http", "tls": True})
    ports = [(p.port, p.protocol, p.state, p.service_name) for p in report.open_ports()]
    assert ports == [(80, "tcp", "open", ""), (8080, "tcp", "open", "ssl/http"),
                     (53, "udp", "open|filtered", "")]


def test_findings_by_severity_then_cvss_then_address():
    def vuln(host: str, id_: str, severity: str, cvss: float | None = None) -> dict:
        return {"kind": "vulnerability", "host": host, "port": 1, "id": id_, "severity": severity,
                "cvss": cvss}

    report = _report(vuln("127.0.0.2", "A", "low"), vuln("127.0.0.1", "B", "critical", 9.1),
                     vuln("127.0.0.1", "C", "critical", 9.8), vuln("127.0.0.1", "D", "info"),
                     vuln("127.0.0.1", "C", "critical", 9.8))
    assert [(sev, [v["id"] for v in items]) for sev, items in report.by_severity()] == [
        ("critical", ["C", "B"]), ("low", ["A"]), ("info", ["D"])]


def test_graph_layers_come_from_the_scan_lines_dag_shape():
    nodes = [{"node": n, "module_type": "noop", "depends_on": d}
             for n, d in [("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"]), ("e", [])]]
    report = _report({"kind": "node", "node": "b", "module_type": "noop", "status": "failed",
                      "error": "boom", "started_at": "2026-01-01T00:00:00.500Z",
                      "finished_at": "2026-01-01T00:00:01.000Z"},
                     {"kind": "scan", "scan_id": "x", "status": "completed", "graph": {"nodes": nodes}})
    graph = {n.id: n for n in report.graph()}
    assert {n: g.layer for n, g in graph.items()} == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 0}
    assert (graph["b"].status, graph["b"].detail) == ("failed", "boom")
    assert graph["a"].status == "pending"  # no line for it
    assert graph["b"].finished - graph["b"].started == 0.5


def test_without_a_scan_line_the_nodes_come_from_their_lines():
    report = _report({"kind": "node", "node": "x", "module_type": "noop", "status": "completed"},
                     {"kind": "node", "node": "y", "module_type": "noop", "status": "running"},
                     {"kind": "node", "node": "y", "module_type": "noop", "status": "cancelled"})
    assert [(n.id, n.status, n.layer) for n in report.graph()] == [
        ("x", "completed", 0), ("y", "cancelled", 0)]
    assert report.summary()["status"].startswith("incomplete")


def test_epoch_reads_iso_times_and_numbers():
    assert epoch("1970-01-01T00:00:01.500Z") == 1.5
    assert epoch(2) == 2.0 and epoch(None) is None and epoch("not a time") is None and epoch(True) is None
