"""The real scan pipeline, run in-process against hostile servers on 127.0.0.1.

``target_parser → connect_scanner → banner_grabber → fingerprint_parser``, plus
``http_scanner`` and ``ssl_analyzer`` when asked for (after the fingerprints, so that
whatever key they read is produced upstream). Each node has a ``timeout`` of its own;
the banner grabber's per-port ``deadline`` is the bound a hostile port must hit first.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any

from pentora import DagBuilder, Orchestrator
from pentora.testing import RecordCollector

# Waits short enough for loopback, long enough for a 2-core machine shared by many.
GRAB = {"connect_timeout": "1s", "read_timeout": "1s", "passive_timeout": "1s",
        "short_passive_timeout": "300ms", "idle_timeout": "300ms", "deadline": "4s",
        "max_bytes": 16384}
GRAB_DEADLINE = 4.0
NODE_TIMEOUT = 30.0
BASE_PLUGINS = ("targets.target_parser", "portscan.connect_scanner", "services.banner_grabber",
                "services.fingerprint_parser", "engine.modules")
# module type → plugin module that provides it
OPTIONAL = {"http_scanner": "web.http_scanner", "ssl_analyzer": "tls.ssl_analyzer", "cve_matcher": "cve",
            "ssh_checks": "checks.ssh_checks"}


def missing_module(module_type: str) -> str | None:
    """Why ``module_type`` cannot run here, or None if its plugin registers it."""
    name = f"pentora_plugins.{OPTIONAL[module_type]}"
    try:
        plugin = importlib.import_module(name)
    except Exception as e:  # an unfinished plugin: report, do not crash the collection
        return f"{name} does not import: {type(e).__name__}: {e}"
    if not hasattr(plugin, "pentora_register_modules"):
        return f"{name} registers no module types yet (module {module_type!r} not written)"
    orch = Orchestrator(plugins=[plugin], autoload=False)
    if module_type not in orch.registry.modules:
        return f"{name} does not register module type {module_type!r}"
    return None


@dataclass
class Run:
    result: Any
    emitted: RecordCollector
    elapsed: float

    def get(self, key: str) -> list[Any]:
        return list(self.result.context.get(key, []) or [])

    def of_port(self, key: str, port: int) -> list[Any]:
        return [r for r in self.get(key) if getattr(r, "port", None) == port]

    def duration(self, node: str) -> float:
        return (self.result.nodes[node].duration_ms or 0.0) / 1000


def scan(ports: list[int], extra: tuple[str, ...] = (), grab: dict[str, Any] | None = None,
         configs: dict[str, dict[str, Any]] | None = None) -> Run:
    """Scan 127.0.0.1 ``ports`` with the real modules (and ``extra`` module types, with
    ``configs[module_type]`` as their config)."""
    emitted = RecordCollector()
    plugins: list[Any] = [importlib.import_module(f"pentora_plugins.{p}") for p in BASE_PLUGINS]
    plugins += [importlib.import_module(f"pentora_plugins.{OPTIONAL[t]}") for t in extra]
    orch = Orchestrator(plugins=[*plugins, emitted], autoload=False)
    spec = ",".join(str(p) for p in ports)
    builder = (DagBuilder("hostile")
               .engine(fail_fast=False, node_timeout=f"{NODE_TIMEOUT:g}s", retry={"enabled": False})
               .add_node("targets", "target_parser", config={"targets": "127.0.0.1"})
               .add_node("ports", "connect_scanner", ["targets"],
                         {"ports": spec, "input": "targets", "timeout": "1s"})
               .add_node("banners", "banner_grabber", ["ports"], {**GRAB, **(grab or {})})
               .add_node("fingerprints", "fingerprint_parser", ["banners"]))
    for module_type in extra:
        config = (configs or {}).get(module_type)
        builder = builder.add_node(module_type, module_type, ["fingerprints"], config)
    orch.load_dag(builder.build())
    start = time.monotonic()
    result = orch.execute()
    return Run(result, emitted, time.monotonic() - start)
