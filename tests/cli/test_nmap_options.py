"""nmap's options on ``pentora scan``: each changes what is scanned or reported, against
real listeners on 127.0.0.1 (and, for -Pn, in a network namespace the test makes)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import voluptuous as vol
from pentora_plugins.engine.timing import TEMPLATES

from pentora.testing import network_namespace

# Every scan here leaves ICMP out: it needs privileges a test run may not have.
BASE = ("scan", "--set", "icmp=false")
ROOT = Path(__file__).resolve().parents[2]


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def ports(path: Path) -> set[tuple[int, str]]:
    return {(r["port"], r["protocol"]) for r in records(path) if r["kind"] == "port"}


def nodes(path: Path) -> dict[str, str]:
    return {r["node"]: r["status"] for r in records(path) if r["kind"] == "node"}


def scan_vars(stderr: str) -> str:
    """The DEBUG line naming the vars the command line set."""
    return next(line for line in stderr.splitlines() if "scan vars from the command line" in line)


def test_p_repeated_scans_every_port_given(run_cli, tcp_server, tmp_path):
    a, b = tcp_server(), tcp_server()
    out = tmp_path / "out.jsonl"
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-p", str(a.port), "-p", str(b.port), "-sT",
                   "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert ports(out) == {(a.port, "tcp"), (b.port, "tcp")}


def test_udp_scan_reaches_the_u_ports_of_a_real_udp_socket_beside_the_t_ports(run_cli, tcp_server,
                                                                       udp_server, tmp_path):
    tcp, udp = tcp_server(), udp_server(reply=b"pong")
    out = tmp_path / "out.jsonl"
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-sT", "-sU", "-p", f"U:{udp.port},T:{tcp.port}",
                   "--reason", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert ports(out) == {(tcp.port, "tcp"), (udp.port, "udp")}
    assert udp.received, "the UDP scanner sent nothing to the socket"
    # the summary reads open_ports: both scanners' ports are there, neither replaced the other
    assert f"{tcp.port}/tcp" in proc.stdout and f"{udp.port}/udp" in proc.stdout, proc.stdout
    # --reason: the summary says what each port answered
    row = next(line for line in proc.stdout.splitlines() if f"{udp.port}/udp" in line)
    assert row.split()[2:4] == ["open", "udp-response"], proc.stdout


def test_udp_scan_alone_scans_no_tcp(run_cli, tcp_server, udp_server, tmp_path):
    tcp, udp = tcp_server(), udp_server(reply=b"pong")
    out = tmp_path / "out.jsonl"
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-sU", "-p", f"{tcp.port},{udp.port}", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert ports(out) == {(udp.port, "udp")}
    assert nodes(out)["port_scan"] == "skipped" and nodes(out)["udp_scan"] == "completed"


@pytest.mark.parametrize("args, message", [
    (["-p", "U:53,T:80"], "names UDP ports (U:) but no UDP scan was asked for: add -sU"),
    (["-sU", "-p", "U:53,T:80"], "names TCP ports (T:) but only -sU was given"),
    (["-sT", "-sU", "-p", "U:53"], "has no TCP port for the TCP scan"),
    (["-sS", "-sT"], "one TCP scan at a time"),
    (["-F", "-p", "80"], "give the ports one way"),
    (["-sn", "-sT"], "-sT and -sn ask for profiles that differ"),
    (["-sV", "--profile", "port-scan"], "-sV runs with the profiles service-scan"),
    (["--exclude", "127.0.0.1,,127.0.0.2"], "--exclude 127.0.0.1,,127.0.0.2: an empty item"),
    (["--host-timeout", "soon"], "--host-timeout soon: expected a duration such as '2s'"),
    (["--host-timeout", "5m", "-sn"], "declares no 'host_timeout' var, so --host-timeout cannot"),
    (["-T", "6"], "expected 0-5 or paranoid"),
    (["-Pn", "--profile", "web-scan"], "DAG 'web-scan' declares no 'assume_up' var, so -Pn"),
    (["-sV", "--dag", "discovery-only"], "-sV: DAG 'discovery-only' has no fingerprint_parser node"),
])
def test_misused_nmap_options_are_usage_errors(run_cli, args, message):
    proc = run_cli(*BASE, "-t", "127.0.0.1", *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("option", ["--max-rate", "--min-rate"])
def test_a_rate_option_is_refused_by_a_dag_with_no_rate_var(run_cli, tmp_path, option):
    dag = tmp_path / "no-rates.yaml"
    dag.write_text("name: no-rates\nvars: {targets: ''}\nnodes:\n"
                   "  - {instance_id: ingest, module_type: target_parser, config: {targets: '${targets}'}}\n")
    proc = run_cli("scan", "-t", "127.0.0.1", "--dag", str(dag), option, "10")
    assert proc.returncode == 2, proc.stderr
    assert (f"DAG 'no-rates' declares no 'rate', 'udp_rate' or 'discovery_rate' var, so {option} "
            "cannot reach it; declare one among its vars") in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_connect_scan_option_runs_the_connect_scanner_and_not_the_syn_scanner(run_cli, tcp_server, tmp_path):
    server = tcp_server()
    out = tmp_path / "out.jsonl"
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-sT", "-p", str(server.port), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert [r["method"] for r in records(out) if r["kind"] == "port"] == ["connect"]
    assert nodes(out)["connect_scan"] == "completed" and nodes(out)["port_scan"] == "skipped"


def test_scan_types_without_version_detection_run_port_scan_and_with_it_service_scan(run_cli, tcp_server,
                                                                                   tmp_path):
    server = tcp_server(banner=b"SSH-2.0-OpenSSH_9.2p1\r\n")
    plain, versions = tmp_path / "plain.jsonl", tmp_path / "versions.jsonl"
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-sT", "-p", str(server.port), "-o", str(plain))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-sT", "-sV", "-p", str(server.port), "-o", str(versions))
    assert proc.returncode == 0, proc.stderr
    assert "fingerprint" not in nodes(plain) and "banner" not in {r["kind"] for r in records(plain)}
    service = next(r for r in records(versions) if r["kind"] == "service")
    assert (service["service"], service["product"]) == ("ssh", "OpenSSH")


def test_top_ports_and_fast_scan_the_ranking(run_cli):
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-sT", "--top-ports", "3", "--log-level", "DEBUG")
    assert proc.returncode == 0, proc.stderr
    assert "'ports': 'top-3'" in scan_vars(proc.stderr)
    assert re.search(r"connect_scanner: 3 connects", proc.stderr), proc.stderr
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-sT", "-F", "-vv")
    assert re.search(r"connect_scanner: 100 connects", proc.stderr), proc.stderr


def test_sn_finds_hosts_and_scans_no_port(run_cli, tcp_server, tmp_path):
    server = tcp_server()
    out = tmp_path / "out.jsonl"
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-sn", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    kinds = {r["kind"] for r in records(out)}
    assert "host" in kinds and "port" not in kinds, kinds
    assert f"{server.port}/tcp" not in proc.stdout and "1 host(s) up" in proc.stdout


def test_no_dns_still_resolves_a_target_name(run_cli, tcp_server, tmp_path):
    server = tcp_server()
    out = tmp_path / "out.jsonl"
    proc = run_cli(*BASE, "-t", "localhost", "-n", "-sT", "-p", str(server.port), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (server.port, "tcp") in ports(out)


def test_exclude_and_excludefile_leave_targets_out(run_cli, tmp_path):
    excluded = tmp_path / "exclude.txt"
    excluded.write_text("# never these\n127.0.0.4   127.0.0.5\n")
    out = tmp_path / "out.jsonl"
    proc = run_cli(*BASE, "-t", "127.0.0.1-6", "-sn", "-Pn", "--exclude", "127.0.0.2,127.0.0.3",
                   "--excludefile", str(excluded), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert {r["address"] for r in records(out) if r["kind"] == "host"} == {"127.0.0.1", "127.0.0.6"}


def test_input_list_reads_a_file_with_comments_and_standard_input(run_cli, tmp_path):
    listed = tmp_path / "targets.txt"
    listed.write_text("# lab\n127.0.0.1 127.0.0.2  # two on a line\n\n127.0.0.3\n")
    out = tmp_path / "file.jsonl"
    proc = run_cli(*BASE, "-iL", str(listed), "-t", "127.0.0.9", "-sn", "-Pn", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert {r["address"] for r in records(out) if r["kind"] == "host"} == {
        "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.9"}
    out = tmp_path / "stdin.jsonl"
    proc = run_cli(*BASE, "-iL", "-", "-sn", "-Pn", "-o", str(out),
                   input="127.0.0.7 # a comment\n# 127.0.0.8\n")
    assert proc.returncode == 0, proc.stderr
    assert {r["address"] for r in records(out) if r["kind"] == "host"} == {"127.0.0.7"}


@pytest.mark.parametrize("args, message", [
    (["-iL", "missing.txt"], "-iL missing.txt: target list file not found"),
    (["-iL", "-"], "-iL -: standard input holds no target"),
    (["--excludefile", "missing.txt"], "--excludefile missing.txt: target list file not found"),
])
def test_a_bad_target_list_is_named_with_its_option(run_cli, tmp_path, args, message):
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-sn", *args, cwd=tmp_path, input="# none\n")
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("level", sorted(TEMPLATES))
def test_timing_template_sets_the_rate_timeout_and_retry_vars_of_its_row(run_cli, level):
    proc = run_cli(*BASE, "-t", "127.0.0.1", f"-T{level}", "-sT", "-p", "1", "--log-level", "DEBUG")
    assert proc.returncode == 0, proc.stderr
    line = scan_vars(proc.stderr)
    for var, value in TEMPLATES[level].items():
        assert f"'{var}': {value!r}" in line, (var, line)


def test_rate_and_retry_options_override_the_template(run_cli, closed_tcp_port):
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-T2", "--max-rate", "50", "--max-retries", "0",
                   "-sT", "-p", str(closed_tcp_port), "-vv")
    assert proc.returncode == 0, proc.stderr
    line = scan_vars(proc.stderr)
    assert "'rate': 50" in line and "'udp_rate': 50" in line and "'scan_retries': 0" in line
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-T1", "--min-rate", "40", "-sT",
                   "-p", str(closed_tcp_port), "-vv")
    assert "'rate': 40" in scan_vars(proc.stderr)


# A --hooks file: each node's validated config, as its module gets it, for the nodes with a rate.
NODE_RATES = """import pentora

@pentora.hookimpl(wrapper=True)
def pentora_node_execute(scan, node, ctx):
    if "rate" in ctx.config:
        print("node rate", ctx.node_id, ctx.config["rate"])
    return (yield)
"""


def node_rates(run_cli, tmp_path: Path, *args: str) -> tuple[dict[str, float], str]:
    """The rate each node that has one ran with, and the vars the command line set."""
    hooks = tmp_path / "node_rates.py"
    hooks.write_text(NODE_RATES)
    # ICMP stays in: without privileges its node warns and still runs with its config
    proc = run_cli("scan", "-t", "127.0.0.1", *args, "--hooks", str(hooks), "-vv")
    assert proc.returncode == 0, proc.stderr
    rates = {m[1]: float(m[2]) for m in re.finditer(r"^node rate (\S+) (\S+)$", proc.stdout, re.M)}
    return rates, scan_vars(proc.stderr)


def test_discovery_only_runs_at_the_discovery_modules_own_default_rate(run_cli, tmp_path):
    from pentora_plugins.discovery.icmp_discovery import IcmpDiscovery
    from pentora_plugins.discovery.tcp_probe_discovery import TcpProbeDiscovery

    rates, _ = node_rates(run_cli, tmp_path, "-sn")
    own = {cls.module_type: vol.Schema(cls.config_schema)({})["rate"]
           for cls in (IcmpDiscovery, TcpProbeDiscovery)}
    assert rates == {"discover.icmp": own["icmp_discovery"], "discover.tcp_probe": own["tcp_probe_discovery"]}


def test_max_rate_reaches_the_discovery_of_sn(run_cli, tmp_path):
    rates, line = node_rates(run_cli, tmp_path, "-sn", "--max-rate", "1000")
    assert "'discovery_rate': 1000" in line and "'rate'" not in line, line  # -sn has no port scan
    assert rates == {"discover.icmp": 1000, "discover.tcp_probe": 1000}


def test_max_rate_reaches_discovery_and_the_port_scan_together(run_cli, tmp_path, closed_tcp_port):
    rates, _ = node_rates(run_cli, tmp_path, "-sT", "-p", str(closed_tcp_port), "--max-rate", "700")
    assert rates == {"discover.icmp": 700, "discover.tcp_probe": 700, "connect_scan": 700}


@pytest.mark.parametrize("level", [2, 5])
def test_timing_template_sets_the_discovery_rate_of_sn(run_cli, tmp_path, level):
    rates, _ = node_rates(run_cli, tmp_path, "-sn", f"-T{level}")
    want = TEMPLATES[level]["discovery_rate"]
    assert rates == {"discover.icmp": want, "discover.tcp_probe": want}
    assert TEMPLATES[2]["discovery_rate"] < TEMPLATES[3]["discovery_rate"]  # polite is slower


@pytest.mark.parametrize(("args", "want"), [(("--max-rate", "700"), 700),
                                             (("-T2",), TEMPLATES[2]["discovery_rate"])])
def test_max_rate_and_timing_reach_arp_and_neighbour_discovery(run_cli, tmp_path, args, want):
    rates, _ = node_rates(run_cli, tmp_path, "-sn", "--set", "arp=true", *args)
    assert rates == {"discover.icmp": want, "discover.tcp_probe": want, "discover.arp": want}


def test_min_rate_raises_the_discovery_rate_of_a_slow_template(run_cli, tmp_path):
    rates, _ = node_rates(run_cli, tmp_path, "-sn", "-T1", "--min-rate", "40")
    assert rates == {"discover.icmp": 40, "discover.tcp_probe": 40}


def test_the_timing_table_of_the_docs_is_the_templates():
    lines = (ROOT / "docs" / "cli.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| template |"))
    head, table = lines[start], lines[start + 2:start + 2 + len(TEMPLATES)]
    columns = [re.search(r"`(\w+)`", cell)[1] for cell in head.strip("|").split("|")[1:]]
    assert sorted(columns) == sorted(TEMPLATES[0]), columns
    for (level, values), row in zip(TEMPLATES.items(), table, strict=True):
        assert row.startswith(f"| `-T{level}` "), row
        cells = [cell.strip() for cell in row.strip("|").split("|")[1:]]
        assert dict(zip(columns, cells, strict=True)) == {k: str(v) for k, v in values.items()}, row


def test_host_timeout_reaches_every_port_scanner(run_cli, closed_tcp_port, tmp_path):
    out = tmp_path / "out.jsonl"
    proc = run_cli(*BASE, "-t", "127.0.0.1", "--host-timeout", "90s", "-sT", "-sU", "-p",
                   f"T:{closed_tcp_port},U:{closed_tcp_port}", "-vv", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "'host_timeout': '90s'" in scan_vars(proc.stderr)
    assert {"connect_scan", "udp_scan"} <= {n for n, status in nodes(out).items() if status == "completed"}


def test_v_raises_the_log_level(run_cli):
    quiet = run_cli(*BASE, "-t", "127.0.0.1", "-sn")
    loud = run_cli(*BASE, "-t", "127.0.0.1", "-sn", "-v")
    louder = run_cli(*BASE, "-t", "127.0.0.1", "-sn", "-vv")
    assert " INFO " not in quiet.stderr
    assert " INFO " in loud.stderr and " DEBUG " not in loud.stderr
    assert " DEBUG " in louder.stderr


def test_p_no_syn_scan_names_the_option_that_was_meant(run_cli):
    proc = run_cli(*BASE, "-t", "127.0.0.1", "-p", "no:syn_scan")
    assert proc.returncode == 2
    assert "for a connect scan instead of a SYN scan use -sT" in proc.stderr


@pytest.fixture
def silent_host():
    """A network namespace whose 127.0.0.1 drops ICMP and the discovery ports (it is down
    to discovery) and has a listener on port 5555: ``(namespace, run_pentora)``."""
    with network_namespace() as ns:
        ns.run("iptables", "-A", "INPUT", "-p", "icmp", "-j", "DROP")
        ns.run("iptables", "-A", "INPUT", "-p", "tcp", "-m", "multiport", "--dports",
               "80,443,22,3389", "-j", "DROP")
        listener = ns.popen(sys.executable, "-c", "import socket, time; s = socket.socket(); "
                            "s.bind(('127.0.0.1', 5555)); s.listen(); print('up', flush=True); "
                            "time.sleep(60)", stdout=-1, text=True)
        try:
            assert listener.stdout.readline().strip() == "up"

            def run(*args: str):
                return ns.run(sys.executable, "-m", "pentora", *BASE, "-t", "127.0.0.1", *args,
                              check=False, timeout=60)
            yield run
        finally:
            listener.kill()
            listener.wait()


def test_no_ping_scans_a_host_that_answers_no_discovery_probe(silent_host, tmp_path):
    without = silent_host("-sT", "-p", "5555", "-o", str(tmp_path / "without.jsonl"))
    with_pn = silent_host("-sT", "-p", "5555", "-Pn", "-o", str(tmp_path / "with.jsonl"))
    assert without.returncode == 0 and with_pn.returncode == 0, without.stderr + with_pn.stderr
    assert "0 host(s) up" in without.stdout and ports(tmp_path / "without.jsonl") == set()
    assert ports(tmp_path / "with.jsonl") == {(5555, "tcp")}
    host = next(r for r in records(tmp_path / "with.jsonl") if r["kind"] == "host")
    assert (host["method"], host["reason"]) == ("assumed", "user-set")


def test_open_leaves_out_the_ports_that_did_not_answer(silent_host):
    args = ("-Pn", "-sS", "-p", "5555,80", "--max-retries", "0", "--set", "scan_timeout=300ms")
    shown, hidden = silent_host(*args), silent_host(*args, "--open")
    assert shown.returncode == hidden.returncode == 0, shown.stderr + hidden.stderr
    assert "5555/tcp" in shown.stdout and "5555/tcp" in hidden.stdout
    assert "not shown: 1 filtered port(s)" in shown.stdout, shown.stdout
    assert "not shown" not in hidden.stdout and "80/tcp" not in hidden.stdout
