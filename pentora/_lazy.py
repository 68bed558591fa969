"""A package whose public names are imported on first use, from its ``_api`` module.

``pentora`` and ``pentora.cli`` list their names in ``__all__`` and import nothing heavy
themselves: ``pentora --version`` and shell completion answer before gevent, loguru and
the engine are imported. The first public name asked for brings in all of them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Collection, Mapping
from typing import Any


def lazy_api(package: str, public: Collection[str], own: Collection[str] = (),
             light: Mapping[str, str] = {}) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``: a name of ``public`` not
    in ``own`` (defined by the package itself) comes from ``package._api``, which is
    imported on first use; any other name is no attribute, so that ``from . import x``
    imports the submodule ``x``. A name of ``light`` comes from the submodule it maps to
    alone (``{"hookimpl": "_hookspecs"}``, or ``"_text:clean"`` where the submodule names it
    otherwise): what a plugin's module needs to be imported at all, without the whole API."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's own name
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if name in light:
            module, _, attr = light[name].partition(":")
            value = getattr(importlib.import_module(f"{package}.{module}"), attr or name)
            vars(sys.modules[package])[name] = value
            return value
        api = importlib.import_module(f"{package}._api")
        namespace = vars(sys.modules[package])
        namespace.update({n: getattr(api, n) for n in public if n not in own})
        return namespace[name]

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__
