"""A recursive-descent parser for CEL expressions (cel-spec `langdef.md`, grammar).

Macros (`has`, `exists`, `all`, `exists_one`, `map`, `filter`) are expanded while parsing, the way
CEL parsers do. Constructs the native compiler does not handle (message construction, a leading
dot) raise `CelSyntaxError` too; the caller has already let the reference implementation decide
whether the text is CEL at all, so for those the condition falls back to it.
"""

from __future__ import annotations

from foureyes.policy.cel.ast import (
    MACROS,
    Binary,
    Call,
    Comp,
    Cond,
    Has,
    Ident,
    Index,
    ListLit,
    Lit,
    MapLit,
    Node,
    Select,
    Unary,
)
from foureyes.policy.cel.lexer import RESERVED, CelSyntaxError, Token, tokenize

_RELATIONS = frozenset({"<", "<=", ">", ">=", "==", "!=", "in"})
_LITERALS = frozenset({"int", "uint", "double", "string", "bytes"})
_INT64_MIN_MAGNITUDE = 2**63


def parse(src: str) -> Node:
    """Parse a whole expression; raise `CelSyntaxError` on anything else."""
    parser = _Parser(tokenize(src))
    node = parser.expr()
    token = parser.peek()
    if token.kind != "eof":
        raise CelSyntaxError(
            f"unexpected {_describe(token)} after a complete expression", token.pos
        )
    return node


def _describe(token: Token) -> str:
    if token.kind == "eof":
        return "end of expression"
    if token.kind in _LITERALS:
        return f"{token.kind} literal"
    if token.kind == "ident":
        return f"name '{token.value}'"
    return f"'{token.kind}'"


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "eof":
            self.i += 1
        return token

    def expect(self, kind: str, what: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            raise CelSyntaxError(f"expected {what}, found {_describe(token)}", token.pos)
        return self.next()

    # expr: or ('?' or ':' expr)?
    def expr(self) -> Node:
        cond = self.logical("||")
        if self.peek().kind != "?":
            return cond
        self.next()
        then = self.logical("||")
        self.expect(":", "':' of a conditional expression")
        orelse = self.expr()
        return Cond(cond.pos, orelse.end, cond, then, orelse)

    def logical(self, op: str) -> Node:
        """A chain of `||` (over `&&` chains) or of `&&` (over relations), left-associative."""
        left = self.logical("&&") if op == "||" else self.relation()
        while self.peek().kind == op:
            op_pos = self.next().pos
            right = self.logical("&&") if op == "||" else self.relation()
            left = Binary(left.pos, right.end, op, left, right, op_pos)
        return left

    def relation(self) -> Node:
        left = self.additive()
        while self.peek().kind in _RELATIONS:
            token = self.next()
            right = self.additive()
            left = Binary(left.pos, right.end, token.kind, left, right, token.pos)
        return left

    def additive(self) -> Node:
        left = self.multiplicative()
        while self.peek().kind in ("+", "-"):
            token = self.next()
            right = self.multiplicative()
            left = Binary(left.pos, right.end, token.kind, left, right, token.pos)
        return left

    def multiplicative(self) -> Node:
        left = self.unary()
        while self.peek().kind in ("*", "/", "%"):
            token = self.next()
            right = self.unary()
            left = Binary(left.pos, right.end, token.kind, left, right, token.pos)
        return left

    def unary(self) -> Node:
        token = self.peek()
        if token.kind not in ("!", "-"):
            return self.member()
        ops: list[Token] = []
        while self.peek().kind == token.kind:
            ops.append(self.next())
        if token.kind == "-" and len(ops) == 1 and self.peek().kind in ("int", "double"):
            self.i -= 1  # a single minus before a number belongs to the literal
            return self.member()
        operand = self.member()
        if len(ops) % 2 == 0:
            # Like the reference parsers, a run of an even number of `!` or `-` cancels out:
            # `!!x` is x even when x is not a bool (but `!(!x)` is not).
            return operand
        return Unary(token.pos, operand.end, token.kind, operand)

    def member(self) -> Node:
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            token = self.peek()
            if token.kind == ".":
                self.next()
                name = self.peek()
                if name.kind != "ident":
                    raise CelSyntaxError(
                        f"expected a field or method name after '.', found {_describe(name)}",
                        name.pos,
                    )
                self.next()
                field = str(name.value)
                if self.peek().kind == "(":
                    args, end = self.arguments()
                    node = self.method(node, field, args, end)
                elif self.peek().kind == "{":
                    raise CelSyntaxError("message construction is not supported", self.peek().pos)
                else:
                    node = Select(node.pos, name.end, node, field)
            elif token.kind == "[":
                self.next()
                if self.peek().kind == "?":
                    raise CelSyntaxError("optional indexing is not supported", self.peek().pos)
                index = self.expr()
                close = self.expect("]", "']'")
                node = Index(node.pos, close.end, node, index)
            else:
                return node

    def method(self, target: Node, name: str, args: list[Node], end: int) -> Node:
        if name in MACROS and (len(args) == 2 or (name == "map" and len(args) == 3)):
            var = args[0]
            if not isinstance(var, Ident):
                raise CelSyntaxError(f"the first argument of {name}() must be a name", var.pos)
            if name == "map":
                pred = args[1] if len(args) == 3 else None
                transform: Node | None = args[-1]
            else:
                pred, transform = args[1], None
            return Comp(target.pos, end, name, target, var.name, pred, transform)
        return Call(target.pos, end, name, target, args)

    def arguments(self) -> tuple[list[Node], int]:
        self.expect("(", "'('")
        args: list[Node] = []
        if self.peek().kind != ")":
            args.append(self.expr())
            while self.peek().kind == ",":
                self.next()
                args.append(self.expr())
        close = self.expect(")", "')' or ','")
        return args, close.end

    def primary(self) -> Node:
        token = self.peek()
        kind = token.kind
        if kind == "-" and self.peek(1).kind in ("int", "double"):
            # A minus before a number is part of the literal (so -2**63 is valid); `!-1` is `!`
            # applied to the literal -1.
            self.next()
            number = self.next()
            value = number.value
            assert isinstance(value, int | float)
            return Lit(token.pos, number.end, -value, number.kind)
        if kind in _LITERALS:
            self.next()
            if kind == "int" and token.value == _INT64_MIN_MAGNITUDE:
                raise CelSyntaxError("invalid int literal (out of range)", token.pos)
            return Lit(token.pos, token.end, token.value, kind)
        if kind in ("true", "false"):
            self.next()
            return Lit(token.pos, token.end, kind == "true", "bool")
        if kind == "null":
            self.next()
            return Lit(token.pos, token.end, None, "null")
        if kind == "ident":
            return self.identifier()
        if kind == "(":
            self.next()
            inner = self.expr()
            self.expect(")", "')'")
            return inner
        if kind == "[":
            return self.list_literal()
        if kind == "{":
            return self.map_literal()
        if kind == ".":
            raise CelSyntaxError("names with a leading '.' are not supported", token.pos)
        raise CelSyntaxError(f"expected an operand, found {_describe(token)}", token.pos)

    def identifier(self) -> Node:
        token = self.next()
        name = str(token.value)
        if name in RESERVED:
            raise CelSyntaxError(f"'{name}' is a reserved word", token.pos)
        following = self.peek().kind
        if following == "{":
            raise CelSyntaxError("message construction is not supported", self.peek().pos)
        if following != "(":
            return Ident(token.pos, token.end, name)
        args, end = self.arguments()
        if name == "has":
            if len(args) != 1 or not isinstance(args[0], Select):
                raise CelSyntaxError("has() takes one field selection, as in has(a.b)", token.pos)
            return Has(token.pos, end, args[0])
        return Call(token.pos, end, name, None, args)

    def list_literal(self) -> Node:
        open_ = self.next()
        items: list[Node] = []
        while self.peek().kind != "]":
            if self.peek().kind == "?":
                raise CelSyntaxError("optional list elements are not supported", self.peek().pos)
            items.append(self.expr())
            if self.peek().kind != ",":
                break
            self.next()
        close = self.expect("]", "']' or ','")
        return ListLit(open_.pos, close.end, items)

    def map_literal(self) -> Node:
        open_ = self.next()
        entries: list[tuple[Node, Node]] = []
        while self.peek().kind != "}":
            if self.peek().kind == "?":
                raise CelSyntaxError("optional map entries are not supported", self.peek().pos)
            key = self.expr()
            self.expect(":", "':' after a map key")
            entries.append((key, self.expr()))
            if self.peek().kind != ",":
                break
            self.next()
        close = self.expect("}", "'}' or ','")
        return MapLit(open_.pos, close.end, entries)
