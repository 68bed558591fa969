"""Run one scan module inside a test's network namespace and print its results as JSON.

Usage (from a test): ``ns.python(__file__, json.dumps(spec))`` where ``spec`` has
``plugin`` (module to import), ``module_type``, ``config``, ``targets`` (default
127.0.0.1), ``tcp`` (ports to listen on), ``tcp6`` (ports to listen on ::1), ``udp``
({port: reply hex, "" = silent}), ``drop_privileges`` (become uid/gid 65534 after the
listeners are bound and everything is imported), ``keys`` (the DataContext keys printed;
default open_ports and port_states), ``prefix`` (scan every address of it instead of
``targets``), ``trace_memory`` (report the scan's peak traced memory as ``peak_memory``),
``assume_up`` (the targets go through ``target_parser`` and ``discovery_merger`` with
``assume_up``, nmap's -Pn, as a CLI scan's do; with ``prefix``, given as one spec),
``options`` (the scan's options, e.g. ``{"shard": [k, n, seed]}``), ``chunk_probes``
(``syn_scanner``'s probes a chunk) and ``recv_buffer`` (the bytes of raw discovery's
receive buffers: a small one drops replies). Listeners bind 127.0.0.1 (or ::1) inside the
namespace only.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import os
import socket
import sys
import threading
import tracemalloc
from typing import Any


def listen_tcp(ports: list[int], host: str = "127.0.0.1") -> list[socket.socket]:
    out = []
    for port in ports:
        s = socket.socket(socket.AF_INET6 if host == "::1" else socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(1024)
        out.append(s)
    return out


def serve_udp(port: int, reply: bytes) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))

    def loop() -> None:
        while True:
            data, peer = s.recvfrom(65535)
            if reply:
                s.sendto(reply, peer)

    threading.Thread(target=loop, daemon=True).start()
    return s


def drop_privileges() -> None:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def main(spec: dict[str, Any]) -> None:
    import gevent
    import pentora_plugins.engine
    import pentora_plugins.portscan

    from pentora import DagBuilder, Orchestrator
    from pentora._logging import configure

    configure("INFO")  # the tests read the scanner's log lines from stderr

    keep = listen_tcp(spec.get("tcp", [])) + listen_tcp(spec.get("tcp6", []), "::1")
    keep += [serve_udp(int(p), bytes.fromhex(r)) for p, r in spec.get("udp", {}).items()]
    plugin = importlib.import_module(spec["plugin"])
    if "chunk_probes" in spec:  # small chunks: a few hosts make several
        import pentora_plugins.portscan.syn_scanner as syn_scanner
        syn_scanner.CHUNK_PROBES = spec["chunk_probes"]
    if "recv_buffer" in spec:
        import pentora_plugins.discovery._raw as raw
        raw.RECV_BUFFER = spec["recv_buffer"]
    plugins = [plugin, pentora_plugins.engine, pentora_plugins.portscan]
    if spec.get("assume_up"):
        import pentora_plugins.discovery
        import pentora_plugins.targets

        plugins += [pentora_plugins.discovery, pentora_plugins.targets]
    orch = Orchestrator(plugins=list(dict.fromkeys(plugins)), autoload=False)
    config = dict(spec["config"], input="targets")
    targets = spec.get("targets", ["127.0.0.1"])
    if spec.get("assume_up"):
        dag = (DagBuilder("ns-scan")
               .add_node("targets", "target_parser", config={"targets": spec.get("prefix", targets)})
               .add_node("merge", "discovery_merger", ["targets"], {"assume_up": True})
               .add_node("scan", spec["module_type"], ["merge"], dict(config, input="discovered_hosts")))
        orch.load_dag(dag.build())
    else:
        if "prefix" in spec:  # every address of a network too large for a command line
            targets = [str(a) for a in ipaddress.ip_network(spec["prefix"])]
        orch.load_dag(DagBuilder("ns-scan")
                      .add_node("targets", "set", config={"values": {"targets": targets}})
                      .add_node("scan", spec["module_type"], ["targets"], config).build())
    gevent.sleep(0)
    if spec.get("drop_privileges"):
        # Module types load on first use, and the interpreter's own files may be out of an
        # unprivileged user's reach (under /root): import every one of them, and what the
        # connect fallback imports, while still root.
        for mtype in orch.registry.modules.values():
            mtype.cls  # noqa: B018 - the property imports the class
        importlib.import_module("pentora_plugins.portscan.connect_scanner")
        drop_privileges()
    if spec.get("trace_memory"):  # the scan's own allocations: the targets are made already
        tracemalloc.start()
    result = orch.execute(options=spec.get("options", {}))
    if spec.get("trace_memory"):  # before the printing below allocates
        peak = tracemalloc.get_traced_memory()[1]
    node = result.nodes["scan"]
    out = {"status": node.status, "error": node.error, "euid": os.geteuid()}
    for key in spec.get("keys", ("open_ports", "port_states")):  # a discovery reads its own
        out[key] = [r.to_dict() for r in result.context.get(key, [])]
    if spec.get("trace_memory"):
        out["peak_memory"] = peak
    print(json.dumps(out))
    del keep


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
