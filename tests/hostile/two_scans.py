"""Two scans at once in one process and one hub, as a scan server runs them, started and
ended in the order that broke the shared signal state: A starts, B starts, A ends while
B still runs, then a node of B blocks the event loop. Run as a script (a fresh main
thread, gevent patched as the CLI patches it); prints one JSON line."""

from __future__ import annotations

import gevent.monkey

gevent.monkey.patch_all()

import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from pentora import Orchestrator  # noqa: E402
from pentora._registry import load_python_file  # noqa: E402

MODULES = load_python_file(str(Path(__file__).with_name("misbehaving.py")))


def dag(name: str, nodes: list[dict[str, object]], **engine: object) -> dict[str, object]:
    return {"name": name, "engine": {"fail_fast": False, **engine}, "nodes": nodes}


def run(spec: dict[str, object]) -> dict[str, object]:
    orch = Orchestrator(plugins=[MODULES], autoload=False)
    orch.load_dag(spec)
    result = orch.execute()
    return {r.node: {"status": r.status, "error": r.error} for r in result.nodes.values()}


def main() -> None:
    handler, wakeup = signal.getsignal(signal.SIGURG), signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    first = gevent.spawn(run, dag("a", [{"instance_id": "nap", "module_type": "naps"}]))
    gevent.sleep(0.3)  # A's watchdog runs; B's starts after it
    second = gevent.spawn(run, dag("b", [
        {"instance_id": "nap", "module_type": "naps"},
        {"instance_id": "nap2", "module_type": "naps", "depends_on": ["nap"]},
        {"instance_id": "blocker", "module_type": "blocks", "depends_on": ["nap2"]}],
        node_timeout="2s"))
    gevent.joinall([first, second], raise_error=True)
    after = signal.set_wakeup_fd(-1)
    print(json.dumps({"a": first.value, "b": second.value,
                      "handler_restored": signal.getsignal(signal.SIGURG) is handler,
                      "wakeup_restored": after == wakeup}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
