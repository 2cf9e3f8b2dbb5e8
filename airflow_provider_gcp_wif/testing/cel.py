"""The subset of the Common Expression Language (CEL) that Google evaluates in workload identity providers.

Attribute mappings (``google.subject=assertion.arn``, ``attribute.aws_role=...``) and attribute conditions
(``attribute.aws_role == '...'``) are CEL. The emulated STS evaluates them as Google does, so that a mapping or
condition a user (or our own fix text) writes is accepted or rejected for the same reasons as on Google Cloud.

Supported, as Google documents for AWS providers: identifiers and field access (``assertion.arn``,
``assertion.account``, ``attribute.aws_role``, ``google.subject``), string literals in single or double quotes
(with backslash escapes), integers, ``true``/``false``/``null``, lists ``[...]``, ``+`` (strings, integers, lists),
``==``, ``!=``, ``in`` (list membership, map keys), ``!``, ``&&``, ``||`` (CEL's commutative error handling), the
ternary ``c ? a : b``, the string methods ``extract``, ``contains``, ``startsWith``, ``endsWith``, ``size`` (also
as ``size(x)``) and ``has(x.f)``.

A tokenizer and a recursive-descent parser; nothing is ever passed to ``eval``. Errors (unknown field, wrong
type, bad syntax) raise :class:`CelError`, which the caller turns into Google's answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_EXPRESSION_LENGTH = 4096


class CelError(ValueError):
    """The expression does not parse, or its evaluation failed (no such field, no matching overload)."""


# -- tokens -------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>(?:[rR])?(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'))
      | (?P<int>\d+)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>==|!=|&&|\|\||[-+!?:.,()\[\]{}<>])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?"}


@dataclass(frozen=True)
class Token:
    kind: str  # string, int, ident, op, end
    value: Any
    position: int


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise CelError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise CelError(f"Syntax error at position {position}: unexpected {text[position:position + 10]!r}")
        kind = match.lastgroup or ""
        raw = match.group(kind)
        start = match.start(kind)
        if kind == "string":
            tokens.append(Token("string", _unquote(raw), start))
        elif kind == "int":
            tokens.append(Token("int", int(raw), start))
        else:
            tokens.append(Token(kind, raw, start))
        position = match.end()
    tokens.append(Token("end", None, len(text)))
    return tokens


def _unquote(raw: str) -> str:
    if raw[0] in "rR":
        return raw[2:-1]
    body = raw[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            if nxt not in _ESCAPES:
                raise CelError(f"unsupported escape \\{nxt}")
            out.append(_ESCAPES[nxt])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


# -- syntax tree --------------------------------------------------------------------------------------------------

Node = tuple[Any, ...]  # ("lit", v) ("ident", n) ("field", node, n) ("call", target|None, n, args) ("list", items)
# ("index", node, key) ("not", node) ("neg", node) ("bin", op, left, right) ("and", l, r) ("or", l, r) ("cond", c, a, b)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self, value: str | None = None) -> bool:
        token = self.tokens[self.index]
        return token.kind == "op" and token.value == value if value is not None else False

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, value: str) -> None:
        token = self.take()
        if not (token.kind == "op" and token.value == value):
            raise CelError(f"Syntax error at position {token.position}: expected {value!r}")

    def parse(self) -> Node:
        node = self.expression()
        token = self.tokens[self.index]
        if token.kind != "end":
            raise CelError(f"Syntax error at position {token.position}: unexpected {token.value!r}")
        return node

    def expression(self) -> Node:
        condition = self.logical_or()
        if self.peek("?"):
            self.take()
            then = self.expression()
            self.expect(":")
            otherwise = self.expression()
            return ("cond", condition, then, otherwise)
        return condition

    def logical_or(self) -> Node:
        node = self.logical_and()
        while self.peek("||"):
            self.take()
            node = ("or", node, self.logical_and())
        return node

    def logical_and(self) -> Node:
        node = self.relation()
        while self.peek("&&"):
            self.take()
            node = ("and", node, self.relation())
        return node

    def relation(self) -> Node:
        node = self.addition()
        while True:
            token = self.tokens[self.index]
            if token.kind == "op" and token.value in ("==", "!="):
                self.take()
                node = ("bin", token.value, node, self.addition())
            elif token.kind == "ident" and token.value == "in":
                self.take()
                node = ("bin", "in", node, self.addition())
            else:
                return node

    def addition(self) -> Node:
        node = self.unary()
        while self.peek("+"):
            self.take()
            node = ("bin", "+", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek("!"):
            self.take()
            return ("not", self.unary())
        if self.peek("-"):
            self.take()
            return ("neg", self.unary())
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.peek("."):
                self.take()
                name = self.take()
                if name.kind != "ident":
                    raise CelError(f"Syntax error at position {name.position}: expected a field name")
                is_call = self.peek("(")
                node = ("call", node, name.value, self.arguments()) if is_call else ("field", node, name.value)
            elif self.peek("["):
                self.take()
                key = self.expression()
                self.expect("]")
                node = ("index", node, key)
            else:
                return node

    def arguments(self) -> list[Node]:
        self.expect("(")
        args: list[Node] = []
        if not self.peek(")"):
            args.append(self.expression())
            while self.peek(","):
                self.take()
                args.append(self.expression())
        self.expect(")")
        return args

    def primary(self) -> Node:
        token = self.take()
        if token.kind in ("string", "int"):
            return ("lit", token.value)
        if token.kind == "ident":
            if token.value in ("true", "false"):
                return ("lit", token.value == "true")
            if token.value == "null":
                return ("lit", None)
            if self.peek("("):
                return ("call", None, token.value, self.arguments())
            return ("ident", token.value)
        if token.kind == "op" and token.value == "(":
            node = self.expression()
            self.expect(")")
            return node
        if token.kind == "op" and token.value == "[":
            items: list[Node] = []
            if not self.peek("]"):
                items.append(self.expression())
                while self.peek(","):
                    self.take()
                    if self.peek("]"):
                        break
                    items.append(self.expression())
            self.expect("]")
            return ("list", items)
        raise CelError(f"Syntax error at position {token.position}: unexpected {token.value!r}")


def parse(text: str) -> Node:
    """Parse ``text``; raises :class:`CelError` on a syntax error."""
    try:
        return _Parser(text).parse()
    except RecursionError:
        raise CelError("expression nested too deeply") from None


# -- evaluation ---------------------------------------------------------------------------------------------------


def extract(value: str, template: str) -> str:
    """Google's ``extract``: the part of ``value`` that the one ``{name}`` placeholder of ``template`` stands for,
    between the template's literal prefix and suffix (first match); ``''`` when the prefix or suffix is absent."""
    match = re.fullmatch(r"([^{}]*)\{[A-Za-z_][A-Za-z0-9_]*\}([^{}]*)", template)
    if not match:
        raise CelError(f"extract: invalid template {template!r}")
    prefix, suffix = match.groups()
    start = value.find(prefix)
    if start < 0:
        return ""
    start += len(prefix)
    if not suffix:
        return value[start:]
    end = value.find(suffix, start)
    return value[start:end] if end >= 0 else ""


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return {str: "string", int: "int", list: "list", dict: "map", type(None): "null_type"}.get(type(value), "dyn")


def _string_method(name: str, arity: int) -> Callable[[Any, list[Any]], Any]:
    def call(target: Any, args: list[Any]) -> Any:
        if not isinstance(target, str) or len(args) != arity or not all(isinstance(a, str) for a in args):
            raise CelError(f"found no matching overload for '{name}' applied to "
                           f"'{_type_name(target)}.({', '.join(_type_name(a) for a in args)})'")
        if name == "extract":
            return extract(target, args[0])
        if name == "contains":
            return args[0] in target
        if name == "startsWith":
            return target.startswith(args[0])
        return target.endswith(args[0])

    return call


_METHODS: dict[str, Callable[[Any, list[Any]], Any]] = {
    "extract": _string_method("extract", 1),
    "contains": _string_method("contains", 1),
    "startsWith": _string_method("startsWith", 1),
    "endsWith": _string_method("endsWith", 1),
}


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | dict):
        return len(value)
    raise CelError(f"found no matching overload for 'size' applied to '{_type_name(value)}'")


class _Evaluator:
    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = variables

    def run(self, node: Node) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "ident":
            if node[1] not in self.variables:
                raise CelError(f"undeclared reference to '{node[1]}'")
            return self.variables[node[1]]
        if kind == "field":
            target = self.run(node[1])
            if not isinstance(target, dict):
                raise CelError(f"type '{_type_name(target)}' does not support field selection")
            if node[2] not in target:
                raise CelError(f"no such key: {node[2]}")
            return target[node[2]]
        if kind == "index":
            target, key = self.run(node[1]), self.run(node[2])
            if isinstance(target, dict) and key in target:
                return target[key]
            if isinstance(target, list) and isinstance(key, int) and not isinstance(key, bool) \
                    and 0 <= key < len(target):
                return target[key]
            raise CelError(f"no such key: {key!r}")
        if kind == "list":
            return [self.run(item) for item in node[1]]
        if kind == "call":
            return self.call(node)
        if kind == "not":
            return not self.boolean(self.run(node[1]), "!_")
        if kind == "neg":
            value = self.run(node[1])
            if not isinstance(value, int) or isinstance(value, bool):
                raise CelError(f"found no matching overload for '-_' applied to '({_type_name(value)})'")
            return -value
        if kind == "cond":
            chosen = node[2] if self.boolean(self.run(node[1]), "_?_:_") else node[3]
            return self.run(chosen)
        if kind in ("and", "or"):
            return self.logical(kind, node[1], node[2])
        return self.binary(node[1], self.run(node[2]), self.run(node[3]))

    @staticmethod
    def boolean(value: Any, operator: str) -> bool:
        if not isinstance(value, bool):
            raise CelError(f"found no matching overload for '{operator}' applied to '({_type_name(value)})'")
        return value

    def logical(self, kind: str, left_node: Node, right_node: Node) -> bool:
        # CEL: `false && error` is false and `true || error` is true, whichever side the error is on.
        decisive = kind == "or"
        outcomes: list[bool | CelError] = []
        for side in (left_node, right_node):
            try:
                value = self.boolean(self.run(side), "_&&_" if kind == "and" else "_||_")
            except CelError as error:
                outcomes.append(error)
                continue
            if value is decisive:
                return decisive
            outcomes.append(value)
        for outcome in outcomes:
            if isinstance(outcome, CelError):
                raise outcome
        return not decisive

    def call(self, node: Node) -> Any:
        _, target_node, name, arg_nodes = node
        if target_node is None:
            if name == "has" and len(arg_nodes) == 1 and arg_nodes[0][0] == "field":
                target = self.run(arg_nodes[0][1])
                if not isinstance(target, dict):
                    raise CelError("has() needs a map")
                return arg_nodes[0][2] in target
            args = [self.run(a) for a in arg_nodes]
            if name == "size" and len(args) == 1:
                return _size(args[0])
            raise CelError(f"undeclared reference to '{name}'")
        target = self.run(target_node)
        args = [self.run(a) for a in arg_nodes]
        if name == "size" and not args:
            return _size(target)
        method = _METHODS.get(name)
        if method is None:
            raise CelError(f"undeclared reference to '{name}'")
        return method(target, args)

    @staticmethod
    def binary(operator: str, left: Any, right: Any) -> Any:
        if operator == "==":
            return _type_name(left) == _type_name(right) and left == right
        if operator == "!=":
            return not (_type_name(left) == _type_name(right) and left == right)
        if operator == "in":
            if isinstance(right, list):
                return any(_type_name(left) == _type_name(item) and left == item for item in right)
            if isinstance(right, dict):
                return left in right
            raise CelError(f"found no matching overload for '@in' applied to '({_type_name(left)}, "
                           f"{_type_name(right)})'")
        if _type_name(left) == _type_name(right) and isinstance(left, str | int | list) \
                and not isinstance(left, bool):
            return left + right
        raise CelError(f"found no matching overload for '_+_' applied to '({_type_name(left)}, "
                       f"{_type_name(right)})'")


def evaluate(expression: str | Node, variables: Mapping[str, Any]) -> Any:
    """Evaluate a CEL expression (text or a parsed tree) over ``variables`` (e.g. ``{"assertion": {...}}``)."""
    node = parse(expression) if isinstance(expression, str) else expression
    try:
        return _Evaluator(variables).run(node)
    except RecursionError:
        raise CelError("expression nested too deeply") from None


# -- Google's workload identity semantics -------------------------------------------------------------------------

AWS_ROLE_DEFAULT = (
    "assertion.arn.contains('assumed-role') ? assertion.arn.extract('{account_arn}assumed-role/') + "
    "'assumed-role/' + assertion.arn.extract('assumed-role/{role_name}/') : assertion.arn"
)
#: What Google maps for an AWS provider that has no attribute mapping (Google's provider reference).
AWS_DEFAULT_MAPPING: dict[str, str] = {"google.subject": "assertion.arn", "attribute.aws_role": AWS_ROLE_DEFAULT}
_MAPPING_KEY = re.compile(r"^(google\.subject|google\.groups|google\.display_name|attribute\.[a-z0-9_]{1,100})$")


def check_mapping(mapping: Mapping[str, str]) -> None:
    """What Google checks when a provider is created or updated: keys, ``google.subject`` present, CEL parses."""
    if "google.subject" not in mapping:
        raise CelError("attribute mapping must include google.subject")
    for key, expression in mapping.items():
        if not _MAPPING_KEY.match(key):
            raise CelError(f"invalid attribute mapping key {key!r}")
        parse(expression)


def map_assertion(mapping: Mapping[str, str] | None, assertion: Mapping[str, Any]) -> tuple[str, dict[str, Any],
                                                                                               list[str]]:
    """Evaluate an attribute mapping (``None`` = Google's default AWS mapping) over an assertion.

    Returns ``(google.subject, custom attributes without the "attribute." prefix, google.groups)``; raises
    :class:`CelError` when an expression fails or gives a value of the wrong type.
    """
    rules = dict(mapping) if mapping else dict(AWS_DEFAULT_MAPPING)
    variables = {"assertion": dict(assertion)}
    subject = evaluate(rules["google.subject"], variables)
    if not isinstance(subject, str):
        raise CelError("google.subject must map to a string")
    attributes: dict[str, Any] = {}
    groups: list[str] = []
    for key, expression in rules.items():
        if key.startswith("attribute."):
            value = evaluate(expression, variables)
            if not isinstance(value, str | list):
                raise CelError(f"{key} must map to a string or a list of strings")
            attributes[key.removeprefix("attribute.")] = value
        elif key == "google.groups":
            value = evaluate(expression, variables)
            groups = [value] if isinstance(value, str) else [str(v) for v in value or []]
    return subject, attributes, groups


def condition_holds(condition: str, assertion: Mapping[str, Any], subject: str, attributes: Mapping[str, Any],
                    groups: list[str]) -> bool:
    """An attribute condition admits the credential only when it evaluates to ``true``; an evaluation error (for
    example a reference to an attribute that is not mapped) rejects it, as Google does."""
    variables = {"assertion": dict(assertion), "google": {"subject": subject, "groups": groups},
                 "attribute": dict(attributes)}
    try:
        return evaluate(condition, variables) is True
    except CelError:
        return False
