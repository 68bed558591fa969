"""Notification hooks: called through pluggy, each implementation's failure contained.

One mechanism, in two places:

- ``contain_notifications`` runs as a plugin is registered: each plain implementation of
  a notification hook is wrapped so that an exception is logged with the hook and the
  plugin's name, and the other implementations still run. pluggy still calls them, in
  its order (``tryfirst``/``trylast``), inside any wrappers.
- ``Notifier`` is how the executor calls notification hooks during a scan. It resolves
  each hook's implementations once per scan (a scan does not change plugins), drops those
  of plugins idle in this scan (``pentora_scan_idle``, asked after ``pentora_scan_start``),
  skips hooks nobody implements, and hands the rest to pluggy's own hook executor. A
  wrapper that raises (wrappers cannot be contained one by one) ends that one call, logged
  and named.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from types import CodeType
from typing import Any

from greenlet import GreenletExit

from ._errors import module_failure
from ._log import logger

log = logger.bind(component="hooks")

NODE_HOOKS = ("pentora_node_start", "pentora_node_complete", "pentora_node_failed",
              "pentora_node_skipped", "pentora_node_cancelled", "pentora_node_retry",
              "pentora_node_progress", "pentora_record", "pentora_scan_start",
              "pentora_scan_complete", "pentora_node_checkpoint")
NOTIFICATIONS = frozenset((*NODE_HOOKS, "pentora_cli_commands", "pentora_cli_scan_done",
                           "pentora_scan_idle"))
# Still called for a plugin that said it is idle in a scan (it may have state to release).
ALWAYS = frozenset(("pentora_scan_start", "pentora_scan_complete"))


def contain_notifications(pm: Any, plugin: object, plugin_name: str) -> None:
    """Wrap ``plugin``'s plain notification implementations so that one raising is logged
    (naming the hook and ``plugin_name``) instead of stopping the hook call."""
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.name not in NOTIFICATIONS:
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper):
                impl.function = _contained(impl.function, caller.name, plugin_name,
                                           pm.hook_failures)


def _contained(fn: Callable[..., Any], hook: str, plugin: str,
               failures: list[dict[str, str]]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def contained(*args: Any) -> Any:
        try:  # free unless raised (Python 3.11's zero-cost exceptions)
            return fn(*args)
        except GreenletExit:
            raise  # the scan is stopping and kills what runs: not the plugin's failure
        except BaseException as e:  # SystemExit too: a plugin must not end the scan
            _log_failure(e, hook, plugin, failures)
            return None

    return contained


def impl_codes(impls: Iterable[Any]) -> dict[CodeType, str]:
    """The code object of each hook implementation → its plugin's name: who raised is read
    off a traceback (``culprit``), who registered a module type off the stack."""
    codes: dict[CodeType, str] = {}
    for impl in impls:
        fn = getattr(impl.function, "__wrapped__", impl.function)
        code = getattr(getattr(fn, "__func__", fn), "__code__", None)
        if code is not None:
            codes[code] = impl.plugin_name
    return codes


def culprit(e: BaseException, codes: dict[CodeType, str]) -> str | None:
    """The plugin whose implementation raised ``e``: the innermost one on its traceback."""
    found = None
    tb = e.__traceback__
    while tb is not None:
        found = codes.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found


def _log_failure(e: BaseException, hook: str, plugin: str, failures: list[dict[str, str]]) -> None:
    """Log a contained hook failure and record it: the scan's result lists it (and is not
    ``ok``), so a plugin that failed is never a silent success."""
    shown = module_failure(e)
    log.opt(exception=e).error("hook {} of plugin '{}' raised {}: {} (contained; the scan goes on)",
                               hook, plugin, type(e).__name__, shown)
    failures.append({"hook": hook, "plugin": plugin, "error_type": type(e).__name__,
                     "error": str(shown) or type(e).__name__})


class _Plain:
    """One hook's plain implementations, prepared for a scan: with no wrapper among them
    and no hook-call monitoring, pluggy's executor comes down to calling each in its order
    with the arguments it names; this does that loop without building the keyword dict
    and argument lists on every call. Each call is contained, as ``_contained`` does."""

    __slots__ = ("calls", "failures", "hook")

    def __init__(self, hook: str, argnames: tuple[str, ...], impls: list[Any],
                 failures: list[dict[str, str]]) -> None:
        self.hook = hook
        self.failures = failures
        self.calls: list[tuple[Callable[..., Any], tuple[int, ...] | None, str]] = []
        for impl in reversed(impls):  # pluggy calls the last registered first
            fn = getattr(impl.function, "__wrapped__", impl.function)
            picks: tuple[int, ...] | None = tuple(argnames.index(a) for a in impl.argnames)
            self.calls.append((fn, None if picks == tuple(range(len(argnames))) else picks,
                               impl.plugin_name))

    def __call__(self, *args: Any) -> None:
        for fn, picks, plugin in self.calls:
            try:  # free unless raised (Python 3.11's zero-cost exceptions)
                if picks is None:  # takes every argument, in order
                    fn(*args)
                elif len(picks) == 1:
                    fn(args[picks[0]])
                else:
                    fn(*[args[j] for j in picks])
            except GreenletExit:
                raise
            except BaseException as e:
                _log_failure(e, self.hook, plugin, self.failures)


class Notifier:
    """Calls notification hooks for one scan: ``notify(hook, *args)``, args in the hook
    spec's order. Implementations are those pluggy holds, in pluggy's order; a hook with a
    wrapper (or a manager with hook-call monitoring on) goes through pluggy's executor."""

    def __init__(self, pm: Any) -> None:
        self._pm = pm
        self._exec: Callable[..., Any] = pm._hookexec  # pluggy's executor: wrappers, order, tracing
        # Monitoring (``add_hookcall_monitoring``) replaces the manager's inner executor.
        self._monitored = getattr(pm, "_inner_hookexec", None) is not getattr(pm, "plain_hookexec", None)
        self._calls: dict[str, Callable[..., None]] = {}
        self._codes: dict[CodeType, str] = {}
        self._prepare({name: getattr(pm.hook, name).get_hookimpls() for name in NODE_HOOKS})

    def _prepare(self, impls_by_hook: dict[str, list[Any]]) -> None:
        self._impls = impls_by_hook
        self._calls.clear()
        for name, impls in impls_by_hook.items():
            if not impls:
                continue
            argnames = tuple(getattr(self._pm.hook, name).spec.argnames)
            if self._monitored or any(i.wrapper or i.hookwrapper for i in impls):
                self._calls[name] = functools.partial(self._through_pluggy, name, argnames, impls)
            else:
                self._calls[name] = _Plain(name, argnames, impls, self._pm.hook_failures)
            self._codes.update(impl_codes(impls))

    def has(self, hook: str) -> bool:
        return hook in self._calls

    def __call__(self, hook: str, *args: Any) -> None:
        call = self._calls.get(hook)
        if call is not None:  # None: nobody listens, the common case for most hooks and nodes
            call(*args)
        if hook == "pentora_scan_start":
            self.drop_idle(args[0])

    def _through_pluggy(self, hook: str, argnames: tuple[str, ...], impls: list[Any], *args: Any) -> None:
        try:
            self._exec(hook, impls, dict(zip(argnames, args)), False)
        except GreenletExit:
            raise
        except BaseException as e:  # only a wrapper gets here: plain implementations are contained
            _log_failure(e, hook, culprit(e, self._codes) or "?", self._pm.hook_failures)

    def drop_idle(self, scan: Any) -> None:
        """Leave out, for the rest of this scan, the hooks of plugins idle in it."""
        idle = {id(p) for p in self._pm.hook.pentora_scan_idle(scan=scan) if p is not None}
        if idle:
            self._prepare({name: impls if name in ALWAYS else
                           [i for i in impls if id(i.plugin) not in idle]
                           for name, impls in self._impls.items()})
