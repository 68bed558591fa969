"""Node conditions: ``${var}`` and small boolean expressions, never ``eval``.

The text is parsed with ``ast`` and walked against a whitelist: literals, names,
``and``/``or``/``not``, comparisons, arithmetic on numbers, and calls to a few named
functions. Attribute access, subscripts, lambdas and every other call are refused.
"""

from __future__ import annotations

import ast
import operator
import re
import warnings
from collections.abc import Callable
from typing import Any

from ._errors import ConditionError

_VAR = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_FUNCS: dict[str, Callable[..., Any]] = {
    "len": len, "bool": bool, "int": int, "float": float, "str": str,
    "min": min, "max": max, "any": any, "all": all,
}
_CONSTS = {"true": True, "false": False, "null": None, "none": None,
           "True": True, "False": False, "None": None}
_CMP: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_ARITH: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Mod: operator.mod,
}
MAX_LENGTH = 1000


class Condition:
    """A parsed condition; ``names`` are the variables/keys it reads."""

    def __init__(self, text: str) -> None:
        self.text = text
        if len(text) > MAX_LENGTH:
            raise ConditionError(f"condition is {len(text)} characters long; the limit is {MAX_LENGTH}")
        source = _VAR.sub(r"\1", text).strip()
        if "${" in source:
            raise ConditionError(f"condition {text!r}: '${{...}}' must hold one variable name")
        try:
            with warnings.catch_warnings():
                # "1and x" is valid but Python warns about it on stderr: a DAG file's
                # text must not reach the terminal that way (the problem list has it).
                warnings.simplefilter("ignore", SyntaxWarning)
                tree = ast.parse(source, mode="eval")
        except SyntaxError as e:
            raise ConditionError(f"condition {text!r} cannot be parsed: {e.msg}") from None
        except (RecursionError, MemoryError, ValueError):
            raise ConditionError(f"condition {text[:40]!r}… cannot be parsed (too deep)") from None
        self.names: set[str] = set()
        try:
            self._check(tree.body)
        except RecursionError:
            raise ConditionError(f"condition {text[:40]!r}… is nested too deeply") from None
        self._tree = tree.body

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            if node.id not in _CONSTS:
                self.names.add(node.id)
            return
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, (str, int, float, bool, type(None))):
                self._refuse(node)
            return
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords:
                raise ConditionError(
                    f"condition {self.text!r}: only calls to {', '.join(sorted(_FUNCS))} are allowed")
            for arg in node.args:
                self._check(arg)
            return
        allowed = (ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.Compare,
                   ast.BinOp, ast.List, ast.Tuple, ast.Load, *_CMP, *_ARITH)
        if not isinstance(node, allowed):
            self._refuse(node)
        for child in ast.iter_child_nodes(node):
            self._check(child)

    def _refuse(self, node: ast.AST) -> None:
        what = type(node).__name__
        if isinstance(node, ast.Attribute):
            what = "attribute access"
        elif isinstance(node, ast.Subscript):
            what = "subscripts"
        raise ConditionError(f"condition {self.text!r}: {what} is not allowed in conditions "
                             "(use names, literals, and/or/not, comparisons, len())")

    def evaluate(self, lookup: Callable[[str], Any]) -> bool:
        """Evaluate with ``lookup(name)`` resolving names (raise ``KeyError`` if unknown)."""
        try:
            return bool(self._eval(self._tree, lookup))
        except ConditionError:
            raise
        except RecursionError:
            raise ConditionError(f"condition {self.text[:40]!r}… is nested too deeply") from None
        except KeyError as e:
            raise ConditionError(f"condition {self.text!r}: unknown name {e.args[0]!r}") from None
        except Exception as e:
            raise ConditionError(f"condition {self.text!r} failed: {type(e).__name__}: {e}") from e

    def _eval(self, node: ast.AST, lookup: Callable[[str], Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return _CONSTS[node.id] if node.id in _CONSTS else lookup(node.id)
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(self._eval(v, lookup) for v in node.values)
            return any(self._eval(v, lookup) for v in node.values)
        if isinstance(node, ast.UnaryOp):
            value = self._eval(node.operand, lookup)
            return (not value) if isinstance(node.op, ast.Not) else -_number(value, self.text)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, lookup)
            for op, comp in zip(node.ops, node.comparators):
                right = self._eval(comp, lookup)
                if not _CMP[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BinOp):
            a = _number(self._eval(node.left, lookup), self.text)
            b = _number(self._eval(node.right, lookup), self.text)
            return _ARITH[type(node.op)](a, b)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self._eval(e, lookup) for e in node.elts]
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            return _FUNCS[node.func.id](*[self._eval(a, lookup) for a in node.args])
        self._refuse(node)  # unreachable: _check already refused it


def _number(value: Any, text: str) -> float | int:
    # Arithmetic only on numbers: no "a" * 10**9 memory bombs through a condition.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConditionError(f"condition {text!r}: arithmetic needs numbers, got {value!r}")
    return value
