"""A small, safe arithmetic evaluator for the Math Expression node.

The expression is parsed with :mod:`ast` and walked by hand: only numbers, the node's named
inputs, arithmetic (``+ - * / // % **``), unary signs, ``not``/``and``/``or``, comparisons,
``x if c else y`` and calls of a fixed set of math functions are understood. There is no
``eval``, no attribute access, subscripts, lambdas, comprehensions or strings, so an
expression can read nothing but its inputs. Sizes are capped so that no expression can run
for long: the source length, the number of syntax nodes, exponents and the bit length of
integer results (``9**9**9`` is refused instead of computed).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

MAX_SOURCE_CHARS = 4000
MAX_SYNTAX_NODES = 1000
MAX_EXPONENT = 4000
MAX_INT_BITS = 4096
MAX_ROUND_DIGITS = 100


class ExpressionError(ValueError):
    """The expression is not allowed, or evaluating it failed (the message says why)."""


def _check_size(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"result too large (more than {MAX_INT_BITS} bits)")
    return value


def _number(value: Any) -> Any:
    """Arithmetic is on numbers only (``values`` is a list: ``values * 10**9`` must not run)."""
    if not isinstance(value, (int, float)):
        raise ExpressionError(f"arithmetic needs numbers, got {type(value).__name__}")
    return value


def _power(base: Any, exponent: Any) -> Any:
    if abs(exponent) > MAX_EXPONENT:
        raise ExpressionError(f"exponent {exponent} exceeds the maximum of {MAX_EXPONENT}")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        # The result has about exponent * log2|base| bits: refuse before computing it.
        if exponent * math.log2(abs(base)) > MAX_INT_BITS:
            raise ExpressionError(f"result too large (more than {MAX_INT_BITS} bits)")
    return pow(base, exponent)


def _round(value: Any, digits: int | None = None) -> Any:
    if digits is None:
        return round(value)
    if not isinstance(digits, int) or abs(digits) > MAX_ROUND_DIGITS:
        raise ExpressionError(f"round() takes at most {MAX_ROUND_DIGITS} digits")
    return round(value, digits)


def _sum(*args: Any) -> Any:
    """``sum(values)`` or ``sum(a, b, c)``."""
    if len(args) == 1 and isinstance(args[0], list):
        return sum(args[0])
    return sum(args)


def _as_int(value: Any) -> int:
    return int(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sum": _sum, "min": min, "max": max, "abs": abs, "round": _round, "pow": _power,
    "sqrt": math.sqrt, "ceil": math.ceil, "floor": math.floor, "log": math.log,
    "log2": math.log2, "log10": math.log10, "exp": math.exp, "sin": math.sin, "cos": math.cos,
    "tan": math.tan, "asin": math.asin, "acos": math.acos, "atan": math.atan,
    "atan2": math.atan2, "hypot": math.hypot, "int": _as_int, "float": float,
}
CONSTANTS = {"pi": math.pi, "e": math.e, "True": True, "False": False}

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: _power,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}


def evaluate(expression: str, names: dict[str, Any]) -> Any:
    """The value of ``expression`` with ``names`` bound; :class:`ExpressionError` otherwise."""
    if not isinstance(expression, str) or not expression.strip():
        raise ExpressionError("the expression is empty")
    if len(expression) > MAX_SOURCE_CHARS:
        raise ExpressionError(f"the expression is longer than {MAX_SOURCE_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_SYNTAX_NODES:
        raise ExpressionError(f"the expression has more than {MAX_SYNTAX_NODES} parts")
    try:
        return _Evaluator(names).visit(tree.body)
    except ExpressionError:
        raise
    except ZeroDivisionError:
        raise ExpressionError("division by zero") from None
    except OverflowError:
        raise ExpressionError("a number got too large to represent") from None
    except (ValueError, TypeError) as exc:
        raise ExpressionError(str(exc)) from None


class _Evaluator:
    def __init__(self, names: dict[str, Any]):
        self.names = names

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise ExpressionError(f"{type(node).__name__} is not allowed in a math expression")
        return method(node)

    def visit_Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, (int, float)):  # bool is an int
            return _check_size(node.value)
        raise ExpressionError(f"only numbers are allowed, not {type(node.value).__name__}")

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in self.names:
            return self.names[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise ExpressionError(f"unknown name '{node.id}'")

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        return _check_size(op(_number(self.visit(node.left)), _number(self.visit(node.right))))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        op = _UNARY.get(type(node.op))
        if op is None:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        return op(_number(self.visit(node.operand)))

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        is_and = isinstance(node.op, ast.And)
        value: Any = None
        for operand in node.values:
            value = self.visit(operand)
            if bool(value) != is_and:  # `and` stops at a false value, `or` at a true one
                return value
        return value

    def visit_Compare(self, node: ast.Compare) -> bool:
        left = self.visit(node.left)
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            op = _COMPARE.get(type(op_node))
            if op is None:
                raise ExpressionError(f"comparison {type(op_node).__name__} is not allowed")
            right = self.visit(right_node)
            if not op(left, right):
                return False
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
            raise ExpressionError(f"function '{name}' is not allowed")
        if node.keywords:
            raise ExpressionError("keyword arguments are not allowed")
        args = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise ExpressionError("starred arguments are not allowed")
            args.append(self.visit(arg))
        return _check_size(FUNCTIONS[node.func.id](*args))
