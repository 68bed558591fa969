"""Notification hooks called the fast way during a scan, failures contained."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

log = logger.bind(component="orchestrator")

NODE_HOOKS = ("pentora_node_start", "pentora_node_complete", "pentora_node_failed",
              "pentora_node_skipped", "pentora_node_cancelled", "pentora_node_retry",
              "pentora_node_progress", "pentora_record", "pentora_scan_start",
              "pentora_scan_complete", "pentora_node_checkpoint")



class Notifier:
    """Calls notification hooks, each implementation on its own so failures are contained.

    Arguments are passed positionally in the hook spec's order; each implementation gets
    the subset it names. The implementation lists are fixed once per scan (a scan does
    not change plugins), so a call is a loop over prepared entries.
    """

    def __init__(self, pm: Any) -> None:
        self._impls: dict[str, tuple[tuple[Callable[..., Any], tuple[int, ...] | None, str], ...]] = {}
        for name in NODE_HOOKS:
            caller = getattr(pm.hook, name)
            spec = list(caller.spec.argnames)
            entries = []
            for impl in reversed(caller.get_hookimpls()):
                if impl.wrapper or impl.hookwrapper:
                    continue
                picks: tuple[int, ...] | None = tuple(spec.index(a) for a in impl.argnames)
                if picks == tuple(range(len(spec))):
                    picks = None
                entries.append((impl.function, picks, impl.plugin_name))
            self._impls[name] = tuple(entries)

    def has(self, hook: str) -> bool:
        return bool(self._impls[hook])

    def __call__(self, hook: str, *args: Any) -> None:
        for fn, picks, plugin in self._impls[hook]:
            try:  # free unless raised (Python 3.11's zero-cost exceptions)
                if picks is None:  # takes every argument, in order
                    fn(*args)
                elif len(picks) == 1:
                    fn(args[picks[0]])
                else:
                    fn(*[args[j] for j in picks])
            except Exception as e:
                log.opt(exception=e).error("hook {} of plugin '{}' raised {}: {} (contained; the "
                                           "scan goes on)", hook, plugin, type(e).__name__, e)
