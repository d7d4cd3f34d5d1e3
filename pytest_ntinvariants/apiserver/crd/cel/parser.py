"""CEL's syntax tree, and the recursive-descent parser that builds it (``langdef.md``).

Each node of the tree evaluates itself: ``Expr.ev(env)`` returns a value or raises
``CelError``, leaving what operators and functions do to values to ``.stdlib``.
``&&``, ``||`` and the ``all``/``exists`` macros are commutative over errors, as the
CEL spec says: a side that decides the result hides the other's error. The parser
raises ``Unsupported`` for a construct outside the evaluated subset (a function it does
not know, optionals, bytes...) and ``CelSyntaxError`` for invalid CEL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ...jsonvalues import INT64_MAX, INT64_MIN
from .lexer import CelSyntaxError, Token, Unsupported, lex
from .stdlib import GLOBAL_FUNCTIONS, MACROS, METHODS, CelError, arith, check_int, compare, is_num

__all__ = ["Expr", "parse"]


class Expr:
    """A node of a parsed CEL expression."""

    __slots__ = ()

    def ev(self, env: dict[str, Any]) -> Any:
        """Evaluate in ``env`` (variable name to value)."""
        raise NotImplementedError

    def children(self) -> Iterable[Expr]:
        """The sub-expressions."""
        return ()

    def uses(self, name: str) -> bool:
        """Whether the expression references variable ``name``."""
        return any(c.uses(name) for c in self.children())


class _Lit(Expr):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def ev(self, env: dict[str, Any]) -> Any:
        return self.value


class _Ident(Expr):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def ev(self, env: dict[str, Any]) -> Any:
        try:
            return env[self.name]
        except KeyError:
            raise CelError(f"undeclared reference to '{self.name}'") from None

    def uses(self, name: str) -> bool:
        return self.name == name


class _Select(Expr):
    __slots__ = ("field", "operand", "test_only")

    def __init__(self, operand: Expr, field: str, test_only: bool = False) -> None:
        self.operand = operand
        self.field = field
        self.test_only = test_only

    def ev(self, env: dict[str, Any]) -> Any:
        target = self.operand.ev(env)
        if not isinstance(target, dict):
            raise CelError("no such overload")
        if self.test_only:
            return self.field in target
        try:
            return target[self.field]
        except KeyError:
            raise CelError(f"no such key: {self.field}") from None

    def children(self) -> Iterable[Expr]:
        return (self.operand,)


class _Index(Expr):
    __slots__ = ("index", "operand")

    def __init__(self, operand: Expr, index: Expr) -> None:
        self.operand = operand
        self.index = index

    def ev(self, env: dict[str, Any]) -> Any:
        target = self.operand.ev(env)
        key = self.index.ev(env)
        if isinstance(target, list):
            if isinstance(key, float) and key.is_integer():
                key = int(key)
            if not isinstance(key, int) or isinstance(key, bool):
                raise CelError("no such overload")
            if not 0 <= key < len(target):
                raise CelError(f"index out of bounds: {key}")
            return target[key]
        if isinstance(target, dict):
            if not isinstance(key, str) or key not in target:
                raise CelError(f"no such key: {key}")
            return target[key]
        raise CelError("no such overload")

    def children(self) -> Iterable[Expr]:
        return (self.operand, self.index)


class _ListExpr(Expr):
    __slots__ = ("items",)

    def __init__(self, items: list[Expr]) -> None:
        self.items = items

    def ev(self, env: dict[str, Any]) -> Any:
        return [item.ev(env) for item in self.items]

    def children(self) -> Iterable[Expr]:
        return self.items


class _MapExpr(Expr):
    __slots__ = ("entries",)

    def __init__(self, entries: list[tuple[Expr, Expr]]) -> None:
        self.entries = entries

    def ev(self, env: dict[str, Any]) -> Any:
        out: dict[Any, Any] = {}
        for key_expr, value_expr in self.entries:
            key = key_expr.ev(env)
            if isinstance(key, list | dict | float) or key is None:
                raise CelError("unsupported key type")
            if key in out:
                raise CelError(f"Failed with repeated key: {key}")
            out[key] = value_expr.ev(env)
        return out

    def children(self) -> Iterable[Expr]:
        for key, value in self.entries:
            yield key
            yield value


class _Not(Expr):
    __slots__ = ("operand",)

    def __init__(self, operand: Expr) -> None:
        self.operand = operand

    def ev(self, env: dict[str, Any]) -> Any:
        value = self.operand.ev(env)
        if not isinstance(value, bool):
            raise CelError("no such overload")
        return not value

    def children(self) -> Iterable[Expr]:
        return (self.operand,)


class _Neg(Expr):
    __slots__ = ("operand",)

    def __init__(self, operand: Expr) -> None:
        self.operand = operand

    def ev(self, env: dict[str, Any]) -> Any:
        value = self.operand.ev(env)
        if isinstance(value, bool) or not is_num(value):
            raise CelError("no such overload")
        return check_int(-value) if isinstance(value, int) else -value

    def children(self) -> Iterable[Expr]:
        return (self.operand,)


class _Logic(Expr):
    """``&&`` and ``||``, commutative over errors as CEL specifies."""

    __slots__ = ("is_and", "left", "right")

    def __init__(self, is_and: bool, left: Expr, right: Expr) -> None:
        self.is_and = is_and
        self.left = left
        self.right = right

    def ev(self, env: dict[str, Any]) -> Any:
        absorbing = not self.is_and  # false absorbs &&, true absorbs ||
        error: CelError | None = None
        values: list[Any] = []
        for side in (self.left, self.right):
            try:
                value = side.ev(env)
            except CelError as exc:
                error = error or exc
                continue
            if value is absorbing:
                return absorbing
            values.append(value)
        if error is not None:
            raise error
        if all(isinstance(v, bool) for v in values):
            return not absorbing
        raise CelError("no such overload")

    def children(self) -> Iterable[Expr]:
        return (self.left, self.right)


class _Cond(Expr):
    __slots__ = ("cond", "no", "yes")

    def __init__(self, cond: Expr, yes: Expr, no: Expr) -> None:
        self.cond = cond
        self.yes = yes
        self.no = no

    def ev(self, env: dict[str, Any]) -> Any:
        cond = self.cond.ev(env)
        if not isinstance(cond, bool):
            raise CelError("no such overload")
        return self.yes.ev(env) if cond else self.no.ev(env)

    def children(self) -> Iterable[Expr]:
        return (self.cond, self.yes, self.no)


class _Binary(Expr):
    __slots__ = ("left", "op", "right")

    def __init__(self, op: str, left: Expr, right: Expr) -> None:
        self.op = op
        self.left = left
        self.right = right

    def ev(self, env: dict[str, Any]) -> Any:
        a = self.left.ev(env)
        b = self.right.ev(env)
        if self.op in ("==", "!=", "<", "<=", ">", ">=", "in"):
            return compare(self.op, a, b)
        return arith(self.op, a, b)

    def children(self) -> Iterable[Expr]:
        return (self.left, self.right)


class _Call(Expr):
    __slots__ = ("args", "fn", "name")

    def __init__(self, name: str, fn: Callable[..., Any], args: list[Expr]) -> None:
        self.name = name
        self.fn = fn
        self.args = args

    def ev(self, env: dict[str, Any]) -> Any:
        return self.fn(*(arg.ev(env) for arg in self.args))

    def children(self) -> Iterable[Expr]:
        return self.args


class _Comprehension(Expr):
    """The ``all``/``exists``/``exists_one``/``map``/``filter`` macros."""

    __slots__ = ("kind", "pred", "range_", "transform", "var")

    def __init__(
        self, kind: str, range_: Expr, var: str, pred: Expr | None, transform: Expr | None
    ) -> None:
        self.kind = kind
        self.range_ = range_
        self.var = var
        self.pred = pred
        self.transform = transform

    def ev(self, env: dict[str, Any]) -> Any:
        collection = self.range_.ev(env)
        if isinstance(collection, dict):
            elements: list[Any] = list(collection)
        elif isinstance(collection, list):
            elements = collection
        else:
            raise CelError("no such overload")
        scope = dict(env)
        kind = self.kind
        if kind in ("map", "filter"):
            out: list[Any] = []
            for element in elements:
                scope[self.var] = element
                if self.pred is not None:
                    keep = self.pred.ev(scope)
                    if not isinstance(keep, bool):
                        raise CelError("no such overload")
                    if not keep:
                        continue
                out.append(element if self.transform is None else self.transform.ev(scope))
            return out
        error: CelError | None = None
        hits = 0
        assert self.pred is not None
        for element in elements:
            scope[self.var] = element
            try:
                value = self.pred.ev(scope)
            except CelError as exc:
                if kind == "exists_one":
                    raise
                error = error or exc
                continue
            if not isinstance(value, bool):
                raise CelError("no such overload")
            if kind == "all" and not value:
                return False
            if kind == "exists" and value:
                return True
            hits += value
        if error is not None:
            raise error
        if kind == "all":
            return True
        if kind == "exists":
            return False
        return hits == 1

    def children(self) -> Iterable[Expr]:
        return [e for e in (self.range_, self.pred, self.transform) if e is not None]

    def uses(self, name: str) -> bool:
        if self.range_.uses(name):
            return True
        if name == self.var:
            return False
        return any(e.uses(name) for e in (self.pred, self.transform) if e is not None)


_RELOPS = frozenset(("<", "<=", ">", ">=", "==", "!=", "in"))

# How deep a rule may nest, in the parser's own recursion (parentheses, literals, call
# arguments, unary operators) and in the tree it builds (a chain of ``a + b + ...``):
# cel-go stops at 250, but one level of parentheses costs this parser nine Python frames
# and the evaluator recurses once per level, so a rule past these limits is refused as
# cel-go refuses one past its own, rather than overflowing Python's stack on every
# object the CRD validates.
_MAX_CEL_NESTING = 48
_MAX_CEL_DEPTH = 160


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = lex(text)
        self.pos = 0
        self.nesting = 0

    def _enter(self) -> None:
        self.nesting += 1
        if self.nesting > _MAX_CEL_NESTING:
            raise CelSyntaxError("max recursion depth exceeded")

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, value: str) -> bool:
        token = self.tokens[self.pos]
        return token.kind == "punct" and token.value == value

    def expect(self, value: str) -> None:
        token = self.take()
        if token.kind != "punct" or token.value != value:
            raise CelSyntaxError(f"expected {value!r} at {token.pos}")

    def parse(self) -> Expr:
        expr = self.expr()
        if self.peek().kind != "eof":
            raise CelSyntaxError(f"unexpected token at {self.peek().pos}")
        stack = [(expr, 1)]
        while stack:  # the tree's depth, without recursing over it
            node, depth = stack.pop()
            if depth > _MAX_CEL_DEPTH:
                raise CelSyntaxError("max recursion depth exceeded")
            stack.extend((child, depth + 1) for child in node.children())
        return expr

    def expr(self) -> Expr:
        self._enter()
        cond = self.or_()
        if self.at("?"):
            self.take()
            yes = self.or_()
            self.expect(":")
            no = self.expr()
            cond = _Cond(cond, yes, no)
        self.nesting -= 1
        return cond

    def or_(self) -> Expr:
        left = self.and_()
        while self.at("||"):
            self.take()
            left = _Logic(False, left, self.and_())
        return left

    def and_(self) -> Expr:
        left = self.relation()
        while self.at("&&"):
            self.take()
            left = _Logic(True, left, self.relation())
        return left

    def relation(self) -> Expr:
        left = self.addition()
        while True:
            token = self.peek()
            is_in = token.kind == "ident" and token.value == "in"
            if not (is_in or (token.kind == "punct" and token.value in _RELOPS)):
                return left
            self.take()
            left = _Binary(token.value, left, self.addition())

    def addition(self) -> Expr:
        left = self.multiplication()
        while self.at("+") or self.at("-"):
            op = self.take().value
            left = _Binary(op, left, self.multiplication())
        return left

    def multiplication(self) -> Expr:
        left = self.unary()
        while self.at("*") or self.at("/") or self.at("%"):
            op = self.take().value
            left = _Binary(op, left, self.unary())
        return left

    def operand(self) -> Expr:
        """The operand of a unary operator, which nests as deep as a parenthesis does."""
        self._enter()
        operand = self.unary()
        self.nesting -= 1
        return operand

    def unary(self) -> Expr:
        if self.at("!"):
            self.take()
            return _Not(self.operand())
        if self.at("-"):
            self.take()
            token = self.peek()
            if token.kind in ("int", "double") and not self._member_follows():
                self.take()
                value = -token.value
                if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
                    raise CelSyntaxError("integer literal out of range")
                return self.member_suffix(_Lit(value))
            return _Neg(self.operand())
        return self.member()

    def _member_follows(self) -> bool:
        after = self.tokens[self.pos + 1]
        return after.kind == "punct" and after.value in (".", "[")

    def member(self) -> Expr:
        return self.member_suffix(self.primary())

    def member_suffix(self, expr: Expr) -> Expr:
        while True:
            if self.at("."):
                self.take()
                if self.at("?"):
                    raise Unsupported("optional field selection (.?) is not supported")
                token = self.take()
                if token.kind != "ident":
                    raise CelSyntaxError(f"expected a field name at {token.pos}")
                if self.at("("):
                    self.take()
                    args = self.args(")")
                    expr = self.method(expr, token.value, args)
                else:
                    expr = _Select(expr, token.value)
            elif self.at("["):
                self.take()
                if self.at("?"):
                    raise Unsupported("optional indexing ([?) is not supported")
                index = self.expr()
                self.expect("]")
                expr = _Index(expr, index)
            else:
                return expr

    def args(self, close: str) -> list[Expr]:
        args: list[Expr] = []
        if self.at(close):
            self.take()
            return args
        while True:
            args.append(self.expr())
            if self.at(","):
                self.take()
                if self.at(close):
                    self.take()
                    return args
                continue
            self.expect(close)
            return args

    def primary(self) -> Expr:
        token = self.take()
        if token.kind in ("int", "double", "string"):
            if token.kind == "int" and token.value > INT64_MAX:
                raise CelSyntaxError("integer literal out of range")
            return _Lit(token.value)
        if token.kind == "ident":
            name = token.value
            if name == "true":
                return _Lit(True)
            if name == "false":
                return _Lit(False)
            if name == "null":
                return _Lit(None)
            if self.at("("):
                self.take()
                return self.function(name, self.args(")"))
            return _Ident(name)
        if token.kind == "punct":
            if token.value == "(":
                expr = self.expr()
                self.expect(")")
                return expr
            if token.value == "[":
                return _ListExpr(self.args("]"))
            if token.value == "{":
                return self.map_literal()
            if token.value == ".":
                raise Unsupported("qualified identifiers are not supported")
        raise CelSyntaxError(f"unexpected token at {token.pos}")

    def map_literal(self) -> Expr:
        entries: list[tuple[Expr, Expr]] = []
        while not self.at("}"):
            key = self.expr()
            self.expect(":")
            entries.append((key, self.expr()))
            if not self.at(","):
                break
            self.take()
        self.expect("}")
        return _MapExpr(entries)

    def function(self, name: str, args: list[Expr]) -> Expr:
        if name == "has":
            if len(args) != 1 or not isinstance(args[0], _Select):
                raise CelSyntaxError("invalid argument to has() macro")
            return _Select(args[0].operand, args[0].field, test_only=True)
        spec = GLOBAL_FUNCTIONS.get(name)
        if spec is None:
            raise Unsupported(f"function {name}() is not supported")
        if len(args) not in spec[0]:
            raise CelSyntaxError(f"wrong number of arguments to {name}()")
        return _Call(name, spec[1], args)

    def method(self, target: Expr, name: str, args: list[Expr]) -> Expr:
        if name in MACROS:
            if not args or not isinstance(args[0], _Ident):
                raise CelSyntaxError(f"argument to {name}() must be a simple name")
            var = args[0].name
            if name in ("all", "exists", "exists_one", "filter") and len(args) == 2:
                return _Comprehension(name, target, var, args[1], None)
            if name == "map" and len(args) == 2:
                return _Comprehension(name, target, var, None, args[1])
            if name == "map" and len(args) == 3:
                return _Comprehension(name, target, var, args[1], args[2])
            raise CelSyntaxError(f"wrong number of arguments to {name}()")
        spec = METHODS.get(name)
        if spec is None:
            raise Unsupported(f"function {name}() is not supported")
        if len(args) not in spec[0]:
            raise CelSyntaxError(f"wrong number of arguments to {name}()")
        return _Call(name, spec[1], [target, *args])


def parse(text: str) -> Expr:
    """Compile a CEL expression; raises ``CelSyntaxError`` or ``Unsupported``."""
    if not text.strip():
        raise CelSyntaxError("empty rule")
    return _Parser(text).parse()
