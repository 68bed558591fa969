"""Fan-out: a ``for_each`` node runs one isolated branch per item of its ``for_each`` key.

A branch sees only its own item (``ctx.get(for_each)`` is ``[item]``) and writes into
its own outputs; when every branch has ended, the outputs are merged in item order and
written to the DataContext, so the result does not depend on which branch finished
first. A failed branch is recorded on the node's ``BranchRecord`` and the node goes on;
only when every branch failed does the node fail (``ModuleError``).
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

from gevent import GreenletExit

from ._dag import RetrySpec
from ._errors import ModuleError, module_failure
from ._log import logger
from ._nodectx import NodeContext
from ._records import COMPLETED, FAILED, RUNNING, BranchRecord

if TYPE_CHECKING:
    from ._attempts import Attempts

log = logger.bind(component="fanout")


class FanOut:
    """Runs the branches of ``for_each`` nodes, inside the node's attempt."""

    def __init__(self, attempts: Attempts) -> None:
        self.attempts = attempts

    def run(self, i: int, ctx: NodeContext) -> None:
        """One isolated branch per item of the ``for_each`` key; outputs merged in item order."""
        at = self.attempts
        node, rec = at.nodes[i], at.records[i]
        items = ctx.get(node.for_each)  # type: ignore[arg-type]
        if isinstance(items, dict):
            items = list(items.items())
        items = list(items)
        rec.branches = [BranchRecord(index=k, item=item) for k, item in enumerate(items)]
        spec = at.retry_spec(node)
        done = [0]  # branches ended so far: the node's progress

        def branch(k: int) -> dict[str, Any] | None:
            try:
                return self._branch(i, rec.branches[k], spec)
            finally:
                done[0] += 1
                at.progress(i, done[0], len(items))

        for key, value in _merged(ctx.map(branch, range(len(items)))).items():
            ctx.set(key, value)
        failed = [b for b in rec.branches if b.status == FAILED]
        if items and len(failed) == len(items):
            raise ModuleError(f"all {len(items)} branches failed; first: {failed[0].error}",
                              node.instance_id)

    def _branch(self, i: int, br: BranchRecord, spec: RetrySpec) -> dict[str, Any] | None:
        """Run one branch, retried like a node; a failure is recorded on ``br``, not raised
        (the other branches go on). Returns the branch's outputs, None if it failed."""
        at = self.attempts
        bctx = at.context(i, br.item, progress=_no_progress)

        def begin(_: int, n: int) -> NodeContext:
            if n > 1:
                bctx.outputs = {}  # what a failed attempt wrote is not merged
            return bctx

        br.status = RUNNING
        try:
            # No timeout of its own: the node's timeout bounds all its branches together.
            at.retry(i, spec, None, begin, at.call_execute, branch=br.index)
        except GreenletExit:
            raise
        except BaseException as e:  # SystemExit and the like fail the branch, as in a node
            br.status, br.error = FAILED, str(module_failure(e)) or type(e).__name__
            br.stack_trace = "".join(traceback.format_exception(e))
            log.warning("node '{}' branch {} ({!r}) failed: {}", at.nodes[i].instance_id, br.index,
                        br.item, br.error)
            return None
        br.status = COMPLETED
        return bctx.outputs


def _no_progress(ctx: NodeContext, done: int, total: int | None) -> None:
    """Branches do not report their own progress: the node counts finished branches."""


def _merged(outputs: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The branches' outputs, in item order, merged key by key (None: a failed branch)."""
    merged: dict[str, Any] = {}
    for out in outputs:
        for key, value in (out or {}).items():
            _merge_into(merged, key, value)
    return merged


def _merge_into(merged: dict[str, Any], key: str, value: Any) -> None:
    if key not in merged:
        merged[key] = list(value) if isinstance(value, (list, tuple)) else (
            dict(value) if isinstance(value, dict) else [value])
        return
    current = merged[key]
    if isinstance(current, dict) and isinstance(value, dict):
        current.update(value)
    elif isinstance(value, (list, tuple)):
        current.extend(value)
    else:
        current.append(value)
