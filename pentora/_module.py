"""The ``Module`` base class every module type derives from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._nodectx import NodeContext


class Module:
    """A unit of scan work, instantiated once per node execution.

    Subclasses set ``module_type`` and override ``run``. ``requires`` lists the
    DataContext keys read, ``produces`` the keys written: the validator checks that
    every required key has an upstream producer before anything runs. ``run`` writes
    outputs with ``ctx.set(key, value)`` or returns a ``{key: value}`` dict.
    ``description`` is the line ``pentora modules list`` shows (default: the docstring's
    first line); ``config_schema`` a voluptuous mapping of the node's config, each key
    with a default and a ``description``. docs/writing-plugins.md has the full table, and
    ``pentora plugins new NAME`` writes a module to start from.
    """

    module_type: ClassVar[str] = ""
    description: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[tuple[str, ...]] = ()
    config_schema: ClassVar[Any] = {}
    always_run: ClassVar[bool] = False
    # When the node may run once its upstreams are settled (Airflow's trigger rules):
    # all_success (default), one_success (e.g. a merger of optional inputs), all_done.
    # A node's ``trigger_rule`` field in the DAG overrides it.
    trigger_rule: ClassVar[str] = "all_success"
    # Exception classes of this module that ``retry_on: [transient]`` retries.
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(requires, produces) for this config; override when they depend on it."""
        return tuple(cls.requires), tuple(cls.produces)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError(f"module type '{self.module_type}' does not implement run()")
