"""Domain exceptions. Every message names the node, key or plugin at fault."""

from __future__ import annotations

from dataclasses import dataclass


class PentoraError(Exception):
    """Base class of every error pentora raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a DAG: where it is and what to do about it."""

    message: str
    node: str | None = None
    source: str | None = None
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = f"{self.source}:{self.line}: " if self.line else f"{self.source}: "
        return where + self.message

    def to_dict(self) -> dict[str, object]:
        return {
            "message": self.message,
            "node": self.node,
            "source": self.source,
            "line": self.line,
            "key": self.key,
        }


class ValidationError(PentoraError):
    """A DAG is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in DAG"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


class DagParseError(ValidationError):
    """The DAG text could not be read: bad YAML/JSON, wrong types, unknown fields."""


class PluginError(PentoraError):
    """A plugin could not be loaded or registered something twice."""


class PluginClashError(PluginError):
    """Two plugins registered the same name; ``providers`` names both, ``clash`` says what
    clashed (the message without its hint: the CLI gives its own, ``-p no:NAME``)."""

    def __init__(self, clash: str, providers: tuple[str, str]) -> None:
        self.clash, self.providers = clash, providers
        old, new = providers
        super().__init__(f"{clash}; leave one out: Orchestrator(disabled=['{old}']) or "
                         f"Orchestrator(disabled=['{new}'])")


class UnknownPluginError(PluginError):
    """A plugin named to be disabled does not exist (a typo, or a former name)."""


class ModuleError(PentoraError):
    """A module failed while running. ``node`` names the node it ran as."""

    def __init__(self, message: str, node: str | None = None) -> None:
        self.node = node
        super().__init__(f"Node '{node}': {message}" if node else message)


class TransientError(ModuleError):
    """A module error worth retrying: matched by ``retry_on: [transient]``."""

    transient = True


class ContextKeyError(PentoraError, KeyError):
    """A node read a DataContext key that is not there."""

    def __init__(self, key: str, node: str | None = None, requires: bool = False) -> None:
        self.key = key
        self.node = node
        if node and requires:
            msg = f"Node '{node}' requires '{key}' but key not found in DataContext"
        elif node:
            msg = f"Node '{node}' read '{key}' but key not found in DataContext"
        else:
            msg = f"Key '{key}' not found in DataContext"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class ContextFullError(PentoraError):
    """The DataContext reached ``max_size`` and its policy forbids eviction."""


class NodeTimeout(TimeoutError):  # noqa: N818 - the public name users catch
    """A node ran longer than its timeout."""


class HubBlocked(NodeTimeout):  # noqa: N818 - a NodeTimeout: retry_on [timeout] covers it
    """A node's timeout passed while its module blocked the event loop."""


class HubInterrupt(BaseException):  # noqa: N818 - not an error of its own: a delivery
    """Raised by the watchdog in a node's blocking code when its timeout has passed; the
    node's attempt (``Attempts._bounded``) turns it into ``HubBlocked``."""


class ConditionError(PentoraError):
    """A node condition could not be parsed or evaluated."""


class ModuleExit(ModuleError):  # noqa: N818 - says what the module did
    """Code run by the engine raised a BaseException that is not an Exception (``SystemExit``,
    ``KeyboardInterrupt``, a bare ``BaseException``, a stray ``gevent.Timeout``). It fails
    the node (or hook call) instead of ending the process; ``original`` is what was raised."""

    def __init__(self, original: BaseException) -> None:
        self.original = original
        detail = f"({original})" if str(original) else ""
        super().__init__(f"raised {type(original).__name__}{detail}: code run by the engine "
                         "fails with an Exception, never by exiting")
        self.__cause__ = original


def module_failure(e: BaseException) -> BaseException:
    """What a record says about ``e``: an Exception as it is, any other BaseException as
    the ModuleExit that names it."""
    return e if isinstance(e, Exception) else ModuleExit(e)
