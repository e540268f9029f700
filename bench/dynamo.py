"""A fast DynamoDB-compatible HTTP server for the benchmark: ``python -m bench.dynamo --port N [--host H]``.

moto's server (``localmode.dynamodb``) answers one request at a time, in about 13 ms an ``UpdateItem``.
Against it the service's core mostly waits, and the CPU it spends per request is dominated by the
wake-ups of an idle process rather than by its work. This server answers in tens of microseconds of
its own CPU, over kept-alive HTTP/1.1 connections, so that one core (shared with the load generator)
serves the service at a few thousand requests a second. moto stays the reference: the tests and local
mode run on it, and ``tests/bench/test_dynamo.py`` drives the service's own store and catalog code
through both servers and compares every answer.

It speaks DynamoDB's JSON protocol (1.0) for exactly what the service and the bench send, with
DynamoDB's semantics, since the service's exactness rests on conditional writes:

- tables: ``CreateTable`` (on demand, string keys: a hash key and an optional range key; a stream
  asked for is described, its ARN, not served), ``DescribeTable``, ``ListTables`` (one page);
- items: ``GetItem`` (a projection), ``UpdateItem`` (a condition; ``ReturnValues`` ``NONE``,
  ``ALL_OLD`` or ``ALL_NEW``, and the old item on a failed condition), ``DeleteItem`` (a condition),
  ``Query`` (a filter, a projection, ``Limit``, ``ExclusiveStartKey``), ``BatchWriteItem`` (puts and
  deletes), ``BatchGetItem`` (keys), ``TransactWriteItems`` (``Update`` with a condition, ``Delete``;
  every condition checked before any write; the ``ClientRequestToken`` botocore adds makes a repeat
  within 10 minutes a no-op, as DynamoDB's does); reads may ask to be consistent, as every read here is;
- expressions on top-level attributes named by ``#`` placeholders: conditions and filters (``OR``,
  ``AND``, parentheses, ``= <> < <= > >=``, ``attribute_exists``, ``attribute_not_exists``),
  updates (``SET`` of a value or ``if_not_exists`` of a value; ``REMOVE``; ``ADD`` of a number or to
  a set; ``DELETE`` from a set), key conditions (the hash key ``=``, the range key compared or
  ``begins_with``), projections.

Anything else (other operations, parameters or values of them, bare attribute names, nested paths,
other operators and functions, HTTP's ``Expect``) is refused by name: a ``ValidationException`` or
``UnknownOperationException`` that names it, never ignored. Signatures are not checked.
Each request is handled whole in the event loop, so every item changes atomically, as in DynamoDB.

``Query`` pages as moto's does, so that the bench counts the same pages on both: a page ends before
the item that would take the items read past 1 000 000 bytes, item sizes counted as moto counts them
(names and values: numbers by their text, binary by its bytes, a boolean or null as 1); and a page
that used up its ``Limit`` (or its bytes) ends with a ``LastEvaluatedKey`` only when the partition
has items beyond the ones read (DynamoDB's gives one whenever the ``Limit`` is reached).

One account and one region (``AWS_REGION``, for the ARNs): tables are not told apart by the
credentials or region a request is signed for.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import bisect
import contextlib
import datetime
import decimal
import functools
import gc
import itertools
import logging
import os
import re
import signal
import socket
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import orjson
import uvloop

from localmode.servers import DynamoDBEndpoint

log = logging.getLogger(__name__)

Value = dict[str, Any]
Item = dict[str, Value]
Names = dict[str, str]
Values = dict[str, Value]
Node = tuple[Any, ...]
Test = Callable[[Item, Names, Values], bool]
Operand = Callable[[Item, Names, Values], Value | None]
Setter = Callable[[Item, Names, Values], Value]
Handler = Callable[[dict[str, Any]], dict[str, Any]]

_ERROR = "com.amazonaws.dynamodb.v20120810#"
_VALIDATION = "com.amazon.coral.validate#ValidationException"
_UNKNOWN_OPERATION = "com.amazon.coral.service#UnknownOperationException"
_SERIALIZATION = "com.amazon.coral.service#SerializationException"
_CONDITION_FAILED = "The conditional request failed"
_TARGET = "DynamoDB_20120810."
_ACCOUNT = "123456789012"

# moto's page: the bench checks DynamoDB's "one page per started megabyte" against both servers.
_PAGE_BYTES = 1_000_000
_ITEM_BYTES = 400 * 1024
_BATCH_GET_BYTES = 16 * 1024 * 1024
_HASH_KEY_BYTES, _RANGE_KEY_BYTES = 2048, 1024
_BATCH_WRITES, _BATCH_GETS, _TRANSACT_ITEMS = 25, 100, 100
_TOKEN_SECONDS = 600.0
# Connections waiting to be accepted: a load test opens hundreds at once (see localmode.dynamodb).
_BACKLOG = 4096
_HEAD_BYTES = 64 * 1024
_BODY_BYTES = 32 * 1024 * 1024

_HUMAN_TYPES = {
    "S": "STRING",
    "N": "NUMBER",
    "B": "BINARY",
    "BOOL": "BOOLEAN",
    "NULL": "NULL",
    "SS": "STRING SET",
    "NS": "NUMBER SET",
    "BS": "BINARY SET",
    "L": "LIST",
    "M": "MAP",
}
_ORDERED_TYPES = frozenset({"S", "N", "B"})
_PREFIX_TYPES = frozenset({"S", "B"})
_SET_TYPES = frozenset({"SS", "NS", "BS"})
_ADD_TYPES = _SET_TYPES | {"N"}


class DynamoError(Exception):
    """An error answer: its ``__type``, message, HTTP status and any other members (an old item, reasons)."""

    def __init__(self, kind: str, message: str, *, status: int = 400, members: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.members = members or {}

    def body(self) -> dict[str, Any]:
        return {"__type": self.kind, "message": self.message, **self.members}


def _invalid(message: str) -> DynamoError:
    return DynamoError(_VALIDATION, message)


def _unsupported(what: str) -> DynamoError:
    return _invalid(f"{what} is not supported by this DynamoDB stand-in (bench.dynamo)")


def _malformed(kind: str) -> DynamoError:
    return DynamoError(_SERIALIZATION, f"Unexpected value for an AttributeValue of type {kind}")


# Attribute values: validation, sizes, equality and order, as DynamoDB defines them.

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DECIMALS = decimal.Context(prec=38, traps=[decimal.InvalidOperation, decimal.Overflow])


def _check_number(data: Any) -> None:
    if not isinstance(data, str):
        raise _malformed("N")
    if _NUMBER.fullmatch(data) is None:
        raise _invalid(f"The parameter cannot be converted to a numeric value: {data}")


def _check_string(data: Any) -> None:
    if not isinstance(data, str):
        raise _malformed("S")


def _check_binary(data: Any) -> None:
    if not isinstance(data, str):
        raise _malformed("B")
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error:
        raise DynamoError(_SERIALIZATION, f"Base64 encoded binary value is not valid: {data[:40]}") from None


def _check_bool(data: Any) -> None:
    if not isinstance(data, bool):
        raise _malformed("BOOL")


def _check_null(data: Any) -> None:
    if data is not True:
        raise _invalid(
            "One or more parameter values were invalid: Null attribute value types must have the value of true"
        )


def _check_list(data: Any) -> None:
    if not isinstance(data, list):
        raise _malformed("L")
    for value in data:
        _check_value(value)


def _check_map(data: Any) -> None:
    if not isinstance(data, dict):
        raise _malformed("M")
    for value in data.values():
        _check_value(value)


def _bytes(text: str) -> bytes:
    return base64.b64decode(text)


def _member(kind: str, text: str) -> Any:
    """A set member as DynamoDB compares it: numbers by value, binary by its bytes."""
    if kind == "NS":
        return Decimal(text)
    return _bytes(text) if kind == "BS" else text


def _members(kind: str, texts: list[str]) -> set[Any]:
    return {_member(kind, text) for text in texts}


def _check_set(kind: str, data: Any) -> None:
    if not isinstance(data, list):
        raise _malformed(kind)
    if not data:
        raise _invalid(f"One or more parameter values were invalid: An {_HUMAN_TYPES[kind].lower()}  may not be empty")
    for text in data:
        _CHECKS[kind[0]](text)
    if len(_members(kind, data)) != len(data):
        raise _invalid(f"One or more parameter values were invalid: Input collection {data} contains duplicates.")


_CHECKS: dict[str, Callable[[Any], None]] = {
    "S": _check_string,
    "N": _check_number,
    "B": _check_binary,
    "BOOL": _check_bool,
    "NULL": _check_null,
    "SS": functools.partial(_check_set, "SS"),
    "NS": functools.partial(_check_set, "NS"),
    "BS": functools.partial(_check_set, "BS"),
    "L": _check_list,
    "M": _check_map,
}


def _check_value(value: Any) -> None:
    try:
        [(kind, data)] = value.items()
    except (AttributeError, ValueError):
        raise _invalid(
            "Supplied AttributeValue has more than one datatypes set, "
            "must contain exactly one of the supported datatypes"
            if isinstance(value, dict) and value
            else "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
        ) from None
    check = _CHECKS.get(kind)
    if check is None:
        raise DynamoError(_SERIALIZATION, f"Unknown AttributeValue type: {kind}")
    check(data)


def _text_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _binary_bytes(text: str) -> int:
    # Validated base64 is padded: its length says the length of what it encodes.
    return len(text) // 4 * 3 - text.count("=", -2)


def _value_size(value: Value) -> int:
    [(kind, data)] = value.items()
    return _SIZES[kind](data)


def _item_size(item: Item) -> int:
    """The item's size as moto counts it for the 1 MB page (DynamoDB's own count differs in details)."""
    total = 0
    for name, value in item.items():
        [(kind, data)] = value.items()
        total += _text_bytes(name) + (len(data) if kind == "N" else _SIZES[kind](data))
    return total


_SIZES: dict[str, Callable[[Any], int]] = {
    "S": _text_bytes,
    "N": len,
    "B": _binary_bytes,
    "BOOL": lambda _: 1,
    "NULL": lambda _: 1,
    "SS": lambda texts: sum(map(_text_bytes, texts)),
    "NS": lambda texts: sum(map(len, texts)),
    "BS": lambda texts: sum(map(_binary_bytes, texts)),
    "L": lambda values: sum(map(_value_size, values)),
    "M": _item_size,
}


def _same_maps(first: dict[str, Value], second: dict[str, Value]) -> bool:
    return first.keys() == second.keys() and all(_same(value, second[name]) for name, value in first.items())


_SAME: dict[str, Callable[[Any, Any], bool]] = {
    "N": lambda first, second: Decimal(first) == Decimal(second),
    "B": lambda first, second: _bytes(first) == _bytes(second),
    "SS": lambda first, second: set(first) == set(second),
    "NS": lambda first, second: _members("NS", first) == _members("NS", second),
    "BS": lambda first, second: _members("BS", first) == _members("BS", second),
    "L": lambda first, second: len(first) == len(second) and all(map(_same, first, second)),
    "M": _same_maps,
}


def _same(first: Value, second: Value) -> bool:
    if first == second:
        return True
    [(kind, data)] = first.items()
    [(other, other_data)] = second.items()
    same = _SAME.get(kind) if kind == other else None
    return same is not None and same(data, other_data)


def _equal(first: Value | None, second: Value | None) -> bool:
    return first is not None and second is not None and _same(first, second)


def _unequal(first: Value | None, second: Value | None) -> bool:
    # A missing attribute is unequal to every value.
    return not _equal(first, second)


_ORDER_KEYS: dict[str, Callable[[Any], Any]] = {"S": str, "N": Decimal, "B": _bytes}


def _order(first: Value | None, second: Value | None) -> int | None:
    """-1, 0 or 1; None where DynamoDB compares nothing (a missing attribute, two types, a set)."""
    if first is None or second is None:
        return None
    [(kind, data)] = first.items()
    [(other, other_data)] = second.items()
    key = _ORDER_KEYS.get(kind) if kind == other else None
    if key is None:
        return None
    left, right = key(data), key(other_data)
    return int(left > right) - int(left < right)


def _less(first: Value | None, second: Value | None) -> bool:
    order = _order(first, second)
    return order is not None and order < 0


def _at_most(first: Value | None, second: Value | None) -> bool:
    order = _order(first, second)
    return order is not None and order <= 0


def _more(first: Value | None, second: Value | None) -> bool:
    order = _order(first, second)
    return order is not None and order > 0


def _at_least(first: Value | None, second: Value | None) -> bool:
    order = _order(first, second)
    return order is not None and order >= 0


_COMPARISONS: dict[str, Callable[[Value | None, Value | None], bool]] = {
    "=": _equal,
    "<>": _unequal,
    "<": _less,
    "<=": _at_most,
    ">": _more,
    ">=": _at_least,
}


def _number_text(number: Decimal) -> str:
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(_DECIMALS), "f")


# Expressions: each text parsed once (cached) into closures; names and values are bound per call.

_TOKENS = re.compile(
    r"\s*(?:(?P<name>#[0-9A-Za-z_]+)|(?P<value>:[0-9A-Za-z_]+)|(?P<word>[A-Za-z_][0-9A-Za-z_]*)"
    r"|(?P<number>[0-9]+)|(?P<symbol><>|<=|>=|[=<>(),+\-.\[\]]))"
)
_END = ("end", "")
_CLAUSES = frozenset({"SET", "REMOVE", "ADD", "DELETE"})
_FUNCTIONS = frozenset(
    {"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains", "size"}
    | {"if_not_exists", "list_append"}
)
_OPERATORS = frozenset({"NOT", "BETWEEN", "IN"})


def _tokens(text: str, what: str) -> list[tuple[str, str]]:
    text = text.strip()
    if not text:
        raise _invalid(f"Invalid {what}: The expression can not be empty;")
    tokens: list[tuple[str, str]] = []
    at = 0
    while at < len(text):
        match = _TOKENS.match(text, at)
        if match is None:
            token = text[at:].split()[0]
            raise _invalid(f'Invalid {what}: Syntax error; token: "{token[:1]}", near: "{token}"')
        kind = cast(str, match.lastgroup)
        tokens.append((kind, match.group(kind)))
        at = match.end()
    tokens.append(_END)
    return tokens


@dataclass(frozen=True, slots=True, eq=False)
class _Uses:
    """What an expression takes from the request: its placeholders, and the checks of its values' types."""

    names: frozenset[str] = frozenset()
    values: frozenset[str] = frozenset()
    # (value placeholder, the types it may have, the start of the error when it has another)
    typed: tuple[tuple[str, frozenset[str], str], ...] = ()


class _Parser:
    """A recursive-descent parser of DynamoDB's expression grammars, top-level paths only."""

    def __init__(self, text: str, what: str) -> None:
        self.what = what
        self.tokens = _tokens(text, what)
        self.at = 0
        self.names: set[str] = set()
        self.values: set[str] = set()
        self.typed: list[tuple[str, frozenset[str], str]] = []

    def uses(self) -> _Uses:
        return _Uses(frozenset(self.names), frozenset(self.values), tuple(self.typed))

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.at]
        if token is not _END:
            self.at += 1
        return token

    def error(self, token: tuple[str, str] | None = None) -> DynamoError:
        text = (token or self.peek())[1] or "<EOF>"
        near = " ".join(text for _, text in self.tokens[max(self.at - 1, 0) : self.at + 2])
        return _invalid(f'Invalid {self.what}: Syntax error; token: "{text}", near: "{near}"')

    def symbol(self, symbol: str) -> bool:
        if self.peek() == ("symbol", symbol):
            self.at += 1
            return True
        return False

    def expect(self, symbol: str) -> None:
        if not self.symbol(symbol):
            raise self.error()

    def keyword(self, word: str) -> bool:
        kind, text = self.peek()
        if kind == "word" and text.upper() == word:
            self.at += 1
            return True
        return False

    def finish(self) -> None:
        if self.peek() is not _END:
            raise self.error()

    def calls(self) -> bool:
        return self.peek()[0] == "word" and self.peek(1) == ("symbol", "(")

    def refuse_operator(self) -> None:
        kind, text = self.peek()
        if kind == "word" and text.upper() in _OPERATORS:
            raise _unsupported(f"Invalid {self.what}: the operator {text.upper()}")

    def function_error(self, name: str) -> DynamoError:
        if name in _FUNCTIONS:
            return _unsupported(f"Invalid {self.what}: the function {name} (here)")
        return _invalid(f"Invalid {self.what}: Invalid function name; function: {name}")

    def type_values(self, operator: str, allowed: frozenset[str], *nodes: Node) -> None:
        error = (
            f"Invalid {self.what}: Incorrect operand type for operator or function; operator or function: {operator}"
        )
        self.typed.extend((node[1], allowed, error) for node in nodes if node[0] == "value")

    def path(self) -> Node:
        kind, text = self.take()
        if kind == "word":
            raise _unsupported(f"Invalid {self.what}: the bare attribute name {text} (a #name is)")
        if kind != "name":
            raise self.error((kind, text))
        self.names.add(text)
        following = self.peek()
        if following in (("symbol", "."), ("symbol", "[")):
            raise _unsupported(f"Invalid {self.what}: the nested attribute path {text}{following[1]}…")
        return ("path", text)

    def operand(self) -> Node:
        kind, text = self.peek()
        if kind == "value":
            self.at += 1
            self.values.add(text)
            return ("value", text)
        if self.calls():
            raise self.function_error(text)
        return self.path()

    # Conditions: AND binds tighter than OR.

    def condition(self) -> Node:
        node = self.conjunction()
        while self.keyword("OR"):
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.keyword("AND"):
            node = ("and", node, self.negation())
        return node

    def negation(self) -> Node:
        self.refuse_operator()
        if self.symbol("("):
            node = self.condition()
            self.expect(")")
            return node
        if self.calls():
            return self.function()
        return self.comparison(self.operand())

    def comparison(self, subject: Node) -> Node:
        kind, text = self.peek()
        if kind == "symbol" and text in _COMPARISONS:
            self.at += 1
            other = self.operand()
            if text not in ("=", "<>"):
                self.type_values(text, _ORDERED_TYPES, subject, other)
            return ("compare", text, subject, other)
        self.refuse_operator()
        raise self.error()

    def function(self) -> Node:
        name = self.take()[1]
        self.expect("(")
        node: Node
        if name in ("attribute_exists", "attribute_not_exists"):
            node = ("exists" if name == "attribute_exists" else "absent", self.path())
        elif name == "begins_with" and self.what == "KeyConditionExpression":
            subject = self.operand()
            self.expect(",")
            prefix = self.operand()
            self.type_values(name, _PREFIX_TYPES, subject, prefix)
            node = ("begins", subject, prefix)
        else:
            raise self.function_error(name)
        self.expect(")")
        return node

    # Updates: clauses of actions on top-level attributes.

    def update(self) -> list[tuple[str, str, Any]]:
        actions: list[tuple[str, str, Any]] = []
        seen: set[str] = set()
        while self.peek() is not _END:
            kind, word = self.take()
            clause = word.upper() if kind == "word" else ""
            if clause not in _CLAUSES:
                raise self.error((kind, word))
            if clause in seen:
                raise _invalid(
                    f'Invalid {self.what}: The "{clause}" section can only be used once in an update expression;'
                )
            seen.add(clause)
            actions.append(self.action(clause))
            while self.symbol(","):
                actions.append(self.action(clause))
        return actions

    def action(self, clause: str) -> tuple[str, str, Any]:
        target = self.path()[1]
        if clause == "SET":
            self.expect("=")
            return (clause, target, self.set_value())
        if clause == "REMOVE":
            return (clause, target, None)
        kind, text = self.take()
        if kind != "value":
            raise self.error((kind, text))
        self.values.add(text)
        error = f"Invalid {self.what}: Incorrect operand type for operator or function; operator: {clause}"
        self.typed.append((text, _ADD_TYPES if clause == "ADD" else _SET_TYPES, error))
        return (clause, target, text)

    def set_value(self) -> Node:
        if self.calls() and self.peek()[1] == "if_not_exists":
            self.at += 2
            path = self.path()
            self.expect(",")
            node = ("if_not_exists", path, self.set_operand())
            self.expect(")")
            return node
        return self.set_operand()

    def set_operand(self) -> Node:
        node = self.operand()
        kind, text = self.peek()
        if kind == "symbol" and text in ("+", "-"):
            raise _unsupported(f"Invalid {self.what}: the arithmetic {text}")
        if node[0] != "value":
            raise _unsupported(f"Invalid {self.what}: a SET to the value of the attribute {node[1]}")
        return node

    def projection(self) -> list[str]:
        refs = [self.path()[1]]
        while self.symbol(","):
            refs.append(self.path()[1])
        self.finish()
        return refs


def _operand(node: Node) -> Operand:
    kind, ref = node
    if kind == "value":
        return lambda item, names, values: values[ref]
    return lambda item, names, values: item.get(names[ref])


def _compile_or(node: Node) -> Test:
    first, second = _compile(node[1]), _compile(node[2])
    return lambda item, names, values: first(item, names, values) or second(item, names, values)


def _compile_and(node: Node) -> Test:
    first, second = _compile(node[1]), _compile(node[2])
    return lambda item, names, values: first(item, names, values) and second(item, names, values)


def _compile_compare(node: Node) -> Test:
    compare, first, second = _COMPARISONS[node[1]], _operand(node[2]), _operand(node[3])
    return lambda item, names, values: compare(first(item, names, values), second(item, names, values))


def _compile_exists(node: Node) -> Test:
    ref = node[1][1]
    return lambda item, names, values: names[ref] in item


def _compile_absent(node: Node) -> Test:
    exists = _compile_exists(node)
    return lambda item, names, values: not exists(item, names, values)


_COMPILERS: dict[str, Callable[[Node], Test]] = {
    "or": _compile_or,
    "and": _compile_and,
    "compare": _compile_compare,
    "exists": _compile_exists,
    "absent": _compile_absent,
}


def _compile(node: Node) -> Test:
    return _COMPILERS[node[0]](node)


@dataclass(frozen=True, slots=True)
class _Compiled:
    uses: _Uses


@dataclass(frozen=True, slots=True)
class _Condition(_Compiled):
    test: Test


@functools.lru_cache(maxsize=4096)
def _condition(text: str, what: str) -> _Condition:
    parser = _Parser(text, what)
    node = parser.condition()
    parser.finish()
    return _Condition(parser.uses(), _compile(node))


def _setter(node: Node) -> Setter:
    """A SET action's value, evaluated on the item as it was before the update."""
    if node[0] == "if_not_exists":
        current, fallback = _operand(node[1]), node[2][1]
        return lambda item, names, values: current(item, names, values) or values[fallback]
    ref = node[1]
    return lambda item, names, values: values[ref]


def _add(current: Value | None, value: Value) -> Value:
    [(kind, data)] = value.items()
    if current is None:
        return {"N": _number_text(Decimal(data))} if kind == "N" else {kind: list(data)}
    [(held, present)] = current.items()
    if held != kind:
        raise _invalid("An operand in the update expression has an incorrect data type")
    if kind == "N":
        return {"N": _number_text(_DECIMALS.add(Decimal(present), Decimal(data)))}
    have = _members(kind, present)
    return {kind: present + [text for text in data if _member(kind, text) not in have]}


def _delete(item: Item, name: str, value: Value) -> None:
    current = item.get(name)
    if current is None:
        return
    [(kind, data)] = value.items()
    [(held, present)] = current.items()
    if held != kind:
        raise _invalid("An operand in the update expression has an incorrect data type")
    gone = _members(kind, data)
    kept = [text for text in present if _member(kind, text) not in gone]
    if kept:
        item[name] = {kind: kept}
    else:
        # DynamoDB has no empty sets: the attribute goes.
        del item[name]


@dataclass(frozen=True, slots=True)
class _Update(_Compiled):
    # (clause, target placeholder or name, the SET's value, or ADD's and DELETE's value placeholder)
    actions: tuple[tuple[str, str, Any], ...]

    def targets(self, names: Names, keys: tuple[str, ...]) -> list[str]:
        targets = [names[ref] for _, ref, _ in self.actions]
        if len(set(targets)) != len(targets):
            twice = next(name for name in targets if targets.count(name) > 1)
            raise _invalid(
                "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of "
                f"these paths; path one: [{twice}], path two: [{twice}]"
            )
        for key in keys:
            if key in targets:
                raise _invalid(
                    f"One or more parameter values were invalid: Cannot update attribute {key}. "
                    "This attribute is part of the key"
                )
        return targets

    def apply(self, base: Item, targets: list[str], names: Names, values: Values) -> Item:
        """The item after the update; every value is computed from ``base``, the item before it."""
        item = dict(base)
        for (clause, _, operand), name in zip(self.actions, targets, strict=True):
            if clause == "SET":
                item[name] = operand(base, names, values)
            elif clause == "REMOVE":
                item.pop(name, None)
            elif clause == "ADD":
                item[name] = _add(base.get(name), values[operand])
            else:
                _delete(item, name, values[operand])
        return item


@functools.lru_cache(maxsize=4096)
def _update(text: str) -> _Update:
    parser = _Parser(text, "UpdateExpression")
    actions = parser.update()
    compiled = tuple(
        (clause, target, _setter(operand) if clause == "SET" else operand) for clause, target, operand in actions
    )
    return _Update(parser.uses(), compiled)


@dataclass(frozen=True, slots=True)
class _Projection(_Compiled):
    refs: tuple[str, ...]

    def attributes(self, names: Names) -> tuple[str, ...]:
        attributes = tuple(names[ref] for ref in self.refs)
        if len(set(attributes)) != len(attributes):
            twice = next(name for name in attributes if attributes.count(name) > 1)
            raise _invalid(
                "Invalid ProjectionExpression: Two document paths overlap with each other; must remove or rewrite "
                f"one of these paths; path one: [{twice}], path two: [{twice}]"
            )
        return attributes


@functools.lru_cache(maxsize=4096)
def _projection(text: str) -> _Projection:
    parser = _Parser(text, "ProjectionExpression")
    refs = parser.projection()
    return _Projection(parser.uses(), tuple(refs))


def _project(item: Item, attributes: tuple[str, ...]) -> Item:
    return {name: item[name] for name in attributes if name in item}


KeyPart = tuple[str, str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class _KeyCondition(_Compiled):
    # (operator, key placeholder, value placeholders)
    parts: tuple[KeyPart, ...]


_KEY_OPERATORS = {"or": "OR", "exists": "attribute_exists", "absent": "attribute_not_exists"}


def _key_part(node: Node) -> KeyPart:
    kind = node[0]
    operands: tuple[Node, ...]
    if kind == "compare" and node[1] != "<>":
        operator, subject, operands = node[1], node[2], (node[3],)
    elif kind == "begins":
        operator, subject, operands = "begins_with", node[1], (node[2],)
    elif kind == "and":
        raise _invalid("KeyConditionExpressions must only contain one condition per key")
    else:
        operator = node[1] if kind == "compare" else _KEY_OPERATORS[kind]
        raise _invalid(f"Invalid operator used in KeyConditionExpression: {operator}")
    if subject[0] != "path" or any(operand[0] != "value" for operand in operands):
        raise _unsupported("A KeyConditionExpression that does not compare a key with values")
    return operator, subject[1], tuple(operand[1] for operand in operands)


@functools.lru_cache(maxsize=4096)
def _key_condition(text: str) -> _KeyCondition:
    parser = _Parser(text, "KeyConditionExpression")
    node = parser.condition()
    parser.finish()
    nodes = [node[1], node[2]] if node[0] == "and" else [node]
    return _KeyCondition(parser.uses(), tuple(_key_part(part) for part in nodes))


def _prefix_end(keys: list[str], prefix: str) -> int:
    """Where the sort keys that begin with ``prefix`` end."""
    stripped = prefix.rstrip(chr(sys.maxunicode))
    if not stripped:
        return len(keys)
    return bisect.bisect_left(keys, stripped[:-1] + chr(ord(stripped[-1]) + 1))


SortCondition = tuple[str, tuple[str, ...]]

_RANGES: dict[str, Callable[[list[str], tuple[str, ...]], tuple[int, int]]] = {
    "=": lambda keys, texts: (bisect.bisect_left(keys, texts[0]), bisect.bisect_right(keys, texts[0])),
    "<": lambda keys, texts: (0, bisect.bisect_left(keys, texts[0])),
    "<=": lambda keys, texts: (0, bisect.bisect_right(keys, texts[0])),
    ">": lambda keys, texts: (bisect.bisect_right(keys, texts[0]), len(keys)),
    ">=": lambda keys, texts: (bisect.bisect_left(keys, texts[0]), len(keys)),
    "begins_with": lambda keys, texts: (bisect.bisect_left(keys, texts[0]), _prefix_end(keys, texts[0])),
}


def _placeholders(given: Any, kind: str, used: frozenset[str], missing: str) -> dict[str, Any]:
    """``ExpressionAttribute<kind>`` against the placeholders the expressions use, as DynamoDB checks them."""
    if given is None:
        given = {}
    elif not isinstance(given, dict) or not given:
        raise _invalid(f"ExpressionAttribute{kind} must not be empty")
    if given.keys() != used:
        absent = sorted(used - given.keys())
        if absent:
            raise _invalid(f"{missing}{absent[0]}")
        unused = ", ".join(sorted(given.keys() - used))
        raise _invalid(f"Value provided in ExpressionAttribute{kind} unused in expressions: keys: {{{unused}}}")
    return cast(dict[str, Any], given)


def _check_names(names: Any, used: frozenset[str]) -> Names:
    missing = "An expression attribute name used in the document path is not defined; attribute name: "
    return cast(Names, _placeholders(names, "Names", used, missing))


def _check_values(values: Any, used: frozenset[str]) -> Values:
    missing = "An expression attribute value used in expression is not defined; attribute value: "
    checked = _placeholders(values, "Values", used, missing)
    for value in checked.values():
        _check_value(value)
    return cast(Values, checked)


def _check_types(uses: _Uses, values: Values) -> None:
    for ref, allowed, error in uses.typed:
        kind = next(iter(values[ref]))
        if kind not in allowed:
            raise _invalid(f"{error}, operand type: {_HUMAN_TYPES[kind]}")


@functools.lru_cache(maxsize=4096)
def _used(present: tuple[_Uses, ...]) -> _Uses:
    """What a request's expressions use together (the cache holds them: their identities stay theirs)."""
    return _Uses(
        frozenset().union(*(uses.names for uses in present)),
        frozenset().union(*(uses.values for uses in present)),
        tuple(itertools.chain.from_iterable(uses.typed for uses in present)),
    )


def _bind(params: dict[str, Any], *expressions: _Compiled | None) -> tuple[Names, Values]:
    """The request's names and values, checked as DynamoDB checks them against the expressions that use them."""
    used = _used(tuple(expression.uses for expression in expressions if expression is not None))
    names = _check_names(params.get("ExpressionAttributeNames"), used.names)
    values = _check_values(params.get("ExpressionAttributeValues"), used.values)
    _check_types(used, values)
    return names, values


# Request parameters.


def _allow(params: dict[str, Any], allowed: frozenset[str], operation: str) -> None:
    if not params.keys() <= allowed:
        raise _unsupported(f"{operation}'s parameter {', '.join(sorted(params.keys() - allowed))}")


def _choice(params: dict[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = params.get(name, choices[0])
    if value not in choices:
        raise _unsupported(f"{name} {value}")
    return cast(str, value)


def _check_flag(params: dict[str, Any], name: str) -> None:
    if not isinstance(params.get(name, False), bool):
        raise DynamoError(_SERIALIZATION, f"{name} must be a boolean")


def _text(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise DynamoError(_SERIALIZATION, f"{name} must be a string")
    return value


def _condition_of(params: dict[str, Any], name: str = "ConditionExpression") -> _Condition | None:
    text = _text(params, name)
    return None if text is None else _condition(text, name)


def _projection_of(params: dict[str, Any]) -> _Projection | None:
    text = _text(params, "ProjectionExpression")
    return None if text is None else _projection(text)


def _update_of(params: dict[str, Any]) -> _Update:
    text = _text(params, "UpdateExpression")
    if text is None:
        raise _unsupported("An update without an UpdateExpression")
    return _update(text)


def _limit(params: dict[str, Any]) -> int | None:
    limit = params.get("Limit")
    if limit is not None and (type(limit) is not int or limit < 1):
        raise _invalid(
            f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: "
            "Member must have value greater than or equal to 1"
        )
    return limit


def _condition_failed(old: Item | None = None) -> DynamoError:
    """The failed condition's error, with ``old`` if the request asked for it and there is one."""
    members = None if old is None else {"Item": old}
    return DynamoError(_ERROR + "ConditionalCheckFailedException", _CONDITION_FAILED, members=members)


def _checked_size(item: Item, error: str = "Item size has exceeded the maximum allowed size") -> int:
    size = _item_size(item)
    if size > _ITEM_BYTES:
        raise _invalid(error)
    return size


def _key_text(value: Any, name: str, limit: int) -> str:
    text = value.get("S") if isinstance(value, dict) and len(value) == 1 else None
    if not isinstance(text, str):
        kind = next(iter(value), "?") if isinstance(value, dict) else "?"
        raise _invalid(
            f"One or more parameter values were invalid: Type mismatch for key {name} expected: S actual: {kind}"
        )
    if not text:
        raise _invalid(
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an "
            f"empty string value. Key: {name}"
        )
    if len(text) * 4 > limit and _text_bytes(text) > limit:
        what = "Size of hashkey" if limit == _HASH_KEY_BYTES else "Aggregated size of all range keys"
        raise _invalid(
            f"One or more parameter values were invalid: {what} has exceeded the size limit of {limit} bytes"
        )
    return text


class _Partition:
    """One partition key's items: a sorted list of their sort keys for ranges, a dict for lookups."""

    __slots__ = ("entries", "keys")

    def __init__(self) -> None:
        # Inserting into a sorted list moves its tail: microseconds for the bench's 10 000-item partitions.
        self.keys: list[str] = []
        self.entries: dict[str, tuple[Item, int]] = {}


class _Table:
    def __init__(self, description: dict[str, Any], hash_key: str, range_key: str | None) -> None:
        self.name: str = description["TableName"]
        self.description = description
        self.hash_key = hash_key
        self.range_key = range_key
        self.key_names = (hash_key,) if range_key is None else (hash_key, range_key)
        self.partitions: dict[str, _Partition] = {}
        self.count = 0
        self.bytes = 0

    def describe(self) -> dict[str, Any]:
        return {**self.description, "TableStatus": "ACTIVE", "ItemCount": self.count, "TableSizeBytes": self.bytes}

    def key_of(self, key: Any) -> tuple[str, str]:
        """The partition and sort key of a ``Key`` parameter, which must hold the key attributes and no other."""
        try:
            hashed, ranged = key[self.hash_key], None if self.range_key is None else key[self.range_key]
        except (KeyError, TypeError):
            raise _invalid("The provided key element does not match the schema") from None
        if len(key) != len(self.key_names):
            raise _invalid("The provided key element does not match the schema")
        partition = _key_text(hashed, self.hash_key, _HASH_KEY_BYTES)
        if self.range_key is None:
            return partition, ""
        return partition, _key_text(ranged, self.range_key, _RANGE_KEY_BYTES)

    def key_item(self, item: Item) -> Item:
        return {name: item[name] for name in self.key_names}

    def checked_item(self, item: Any) -> tuple[str, str, int]:
        """An item to put: its keys and size, once every value is checked."""
        if not isinstance(item, dict):
            raise DynamoError(_SERIALIZATION, "Item must be a map of attribute values")
        for name in self.key_names:
            if name not in item:
                raise _invalid(f"One or more parameter values were invalid: Missing the key {name} in the item")
        partition, sort = self.key_of(self.key_item(item))
        for value in item.values():
            _check_value(value)
        return partition, sort, _checked_size(item)

    def entry(self, partition: str, sort: str) -> tuple[Item, int] | None:
        items = self.partitions.get(partition)
        return None if items is None else items.entries.get(sort)

    def get(self, partition: str, sort: str) -> Item | None:
        entry = self.entry(partition, sort)
        return None if entry is None else entry[0]

    def store(self, partition: str, sort: str, item: Item, size: int) -> None:
        items = self.partitions.get(partition)
        if items is None:
            items = self.partitions[partition] = _Partition()
        old = items.entries.get(sort)
        if old is None:
            bisect.insort(items.keys, sort)
            self.count += 1
        else:
            self.bytes -= old[1]
        items.entries[sort] = (item, size)
        self.bytes += size

    def remove(self, partition: str, sort: str) -> None:
        items = self.partitions.get(partition)
        old = None if items is None else items.entries.pop(sort, None)
        if items is None or old is None:
            return
        del items.keys[bisect.bisect_left(items.keys, sort)]
        self.count -= 1
        self.bytes -= old[1]
        if not items.entries:
            del self.partitions[partition]


def _key_bounds(
    condition: _KeyCondition, table: _Table, names: Names, values: Values
) -> tuple[str, SortCondition | None]:
    """The partition a key condition names, and its condition on the sort key if it has one."""
    partition: str | None = None
    sort: SortCondition | None = None
    for operator, ref, refs in condition.parts:
        name = names[ref]
        texts = tuple(values[ref].get("S") for ref in refs)
        if not all(isinstance(text, str) for text in texts):
            raise _invalid(
                "One or more parameter values were invalid: Condition parameter type does not match schema type"
            )
        if name == table.hash_key and operator == "=" and partition is None:
            partition = cast(str, texts[0])
        elif name == table.range_key and sort is None:
            sort = (operator, cast(tuple[str, ...], texts))
        else:
            raise _invalid("Query key condition not supported")
    if partition is None:
        raise _invalid(f"Query condition missed key schema element: {table.hash_key}")
    return partition, sort


def _stops_before(items: _Partition, rest: range, *, read: int, total: int, limit: int | None) -> bool:
    """Whether moto ends a page that read ``read`` items of ``total`` bytes before the items at ``rest``:
    it checks the limits at each further item of the partition, whether or not the key condition selects it."""
    if not read or not rest:
        return False
    if read == limit:
        return True
    if total + _ITEM_BYTES <= _PAGE_BYTES:
        return False
    keys, entries = items.keys, items.entries
    return any(total + entries[keys[index]][1] > _PAGE_BYTES for index in rest)


def _read(
    items: _Partition | None, sort: SortCondition | None, *, start: str | None, limit: int | None
) -> tuple[list[Item], bool]:
    """A page of a partition's items that meet the sort key condition, after ``start``, and whether it stopped
    before the end (moto's rule: before the item that would take it past the page's bytes, or its limit)."""
    if items is None:
        return [], False
    keys, entries = items.keys, items.entries
    low, high = (0, len(keys)) if sort is None else _RANGES[sort[0]](keys, sort[1])
    begin = 0 if start is None else bisect.bisect_right(keys, start)
    order, rest = range(max(low, begin), high), range(max(high, begin), len(keys))
    page: list[Item] = []
    total = 0
    for index in order:
        item, size = entries[keys[index]]
        if len(page) == limit or total + size > _PAGE_BYTES:
            return page, True
        page.append(item)
        total += size
    return page, _stops_before(items, rest, read=len(page), total=total, limit=limit)


def _request_items(params: dict[str, Any], operation: str, items: Callable[[Any], int], most: int) -> dict[str, Any]:
    """A batch's ``RequestItems``: at least one table, at most ``most`` items in all (``items`` counts a table's)."""
    _allow(params, _BATCH, operation)
    requests = params["RequestItems"]
    if not isinstance(requests, dict) or not requests:
        raise _invalid("RequestItems must name at least one table")
    if sum(items(request) for request in requests.values()) > most:
        raise _invalid(f"Too many items requested for the {operation} call")
    return requests


@dataclass(slots=True)
class _Write:
    """One write of a transaction, checked (and an update's new item computed) before any is applied."""

    table: _Table
    key: tuple[str, str]
    passed: bool = True
    # An update's item after it (None: a delete, or an update whose condition failed), and its size.
    new: Item | None = None
    size: int = 0

    def commit(self) -> None:
        if self.new is None:
            self.table.remove(*self.key)
        else:
            self.table.store(*self.key, self.new, self.size)

    def reason(self) -> dict[str, Any]:
        return {"Code": "None"} if self.passed else {"Code": "ConditionalCheckFailed", "Message": _CONDITION_FAILED}


BatchWrite = tuple[_Table, str, str, Item | None, int]

_CONDITIONAL = frozenset({"ConditionExpression", "ExpressionAttributeNames", "ExpressionAttributeValues"})
_GET_ITEM = frozenset({"TableName", "Key", "ConsistentRead", "ProjectionExpression", "ExpressionAttributeNames"})
_UPDATE_ITEM = (
    frozenset({"TableName", "Key", "UpdateExpression", "ReturnValues", "ReturnValuesOnConditionCheckFailure"})
    | _CONDITIONAL
)
_DELETE_ITEM = frozenset({"TableName", "Key"}) | _CONDITIONAL
_QUERY = frozenset(
    {"TableName", "KeyConditionExpression", "FilterExpression", "ProjectionExpression", "ExpressionAttributeNames"}
    | {"ExpressionAttributeValues", "Limit", "ExclusiveStartKey", "ConsistentRead"}
)
_BATCH = frozenset({"RequestItems"})
_BATCH_GET_TABLE = frozenset({"Keys", "ConsistentRead"})
# botocore gives every TransactWriteItems a ClientRequestToken, and its retries the same one.
_TRANSACT = frozenset({"TransactItems", "ClientRequestToken"})
_TRANSACT_UPDATE = frozenset({"TableName", "Key", "UpdateExpression"}) | _CONDITIONAL
_TRANSACT_DELETE = frozenset({"TableName", "Key"})
_CREATE_TABLE = frozenset({"TableName", "KeySchema", "AttributeDefinitions", "BillingMode", "StreamSpecification"})
_TABLE_NAME = re.compile(r"[a-zA-Z0-9_.-]{3,255}")
_STREAM_VIEWS = frozenset({"KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"})


def _key_schema(schema: Any, definitions: Any) -> tuple[str, str | None]:
    if not isinstance(schema, list) or not isinstance(definitions, list):
        raise _invalid("KeySchema and AttributeDefinitions must be lists")
    kinds = [element.get("KeyType") for element in schema]
    names = [element.get("AttributeName") for element in schema]
    if kinds not in (["HASH"], ["HASH", "RANGE"]):
        raise _invalid("Invalid KeySchema: a HASH key, then at most one RANGE key")
    types = {definition.get("AttributeName"): definition.get("AttributeType") for definition in definitions}
    if set(types) != set(names) or len(types) != len(definitions):
        raise _invalid(
            "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match "
            "number of attributes defined in AttributeDefinitions"
        )
    for name in names:
        if types[name] != "S":
            raise _unsupported(f"The key attribute type {types[name]} (of {name}): keys are strings (S) here")
    return names[0], names[1] if len(names) == 2 else None


def _check_options(params: dict[str, Any]) -> None:
    # DynamoDB's default is PROVISIONED.
    billing = params.get("BillingMode", "PROVISIONED")
    if billing != "PAY_PER_REQUEST":
        raise _unsupported(f"BillingMode {billing}")
    streams = params.get("StreamSpecification")
    if streams is not None and (
        not isinstance(streams.get("StreamEnabled"), bool) or not streams.keys() <= {"StreamEnabled", "StreamViewType"}
    ):
        raise _invalid("StreamSpecification takes StreamEnabled (a boolean) and StreamViewType")
    if streams is not None and streams["StreamEnabled"] and streams.get("StreamViewType") not in _STREAM_VIEWS:
        raise _invalid("StreamSpecification: a stream needs a StreamViewType of " + ", ".join(sorted(_STREAM_VIEWS)))


def _description(params: dict[str, Any], region: str) -> dict[str, Any]:
    """What DescribeTable says of a table that ``params`` created, but for its status and counts."""
    name, created = params["TableName"], time.time()
    arn = f"arn:aws:dynamodb:{region}:{_ACCOUNT}:table/{name}"
    description: dict[str, Any] = {
        "AttributeDefinitions": params["AttributeDefinitions"],
        "TableName": name,
        "KeySchema": params["KeySchema"],
        "CreationDateTime": created,
        # An on-demand table is described with no throughput.
        "ProvisionedThroughput": {"NumberOfDecreasesToday": 0, "ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
        "TableArn": arn,
        "TableId": str(uuid.uuid4()),
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST", "LastUpdateToPayPerRequestDateTime": created},
    }
    streams = params.get("StreamSpecification")
    if streams is not None:
        description["StreamSpecification"] = streams
    if streams is not None and streams["StreamEnabled"]:
        label = datetime.datetime.fromtimestamp(created, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        description["LatestStreamLabel"] = label
        description["LatestStreamArn"] = f"{arn}/stream/{label}"
    return description


class Database:
    """Tables in memory, and the DynamoDB operations on them that this stand-in serves, one call at a time."""

    def __init__(self, region: str) -> None:
        self._region = region
        self._tables: dict[str, _Table] = {}
        # Successful transactions' tokens: what they wrote, and when (a repeat within 10 minutes does nothing).
        self._tokens: dict[str, tuple[bytes, float]] = {}
        self._operations: dict[str, Handler] = {
            "CreateTable": self.create_table,
            "DescribeTable": self.describe_table,
            "ListTables": self.list_tables,
            "GetItem": self.get_item,
            "UpdateItem": self.update_item,
            "DeleteItem": self.delete_item,
            "Query": self.query,
            "BatchWriteItem": self.batch_write_item,
            "BatchGetItem": self.batch_get_item,
            "TransactWriteItems": self.transact_write_items,
        }

    def call(self, target: str, body: bytes) -> tuple[int, bytes]:
        """The HTTP status and JSON body answering ``body`` sent with ``X-Amz-Target: target``."""
        try:
            return 200, orjson.dumps(self._dispatch(target, body))
        except DynamoError as error:
            return error.status, orjson.dumps(error.body())
        except KeyError as missing:
            message = f"1 validation error detected: Value null at '{missing.args[0]}' failed to satisfy constraint: "
            return 400, orjson.dumps({"__type": _VALIDATION, "message": message + "Member must not be null"})
        except (TypeError, AttributeError, ValueError) as malformed:
            return 400, orjson.dumps({"__type": _SERIALIZATION, "message": f"Malformed request: {malformed}"})
        except Exception as exc:
            log.exception("internal error answering %s", target)
            return 500, orjson.dumps({"__type": _ERROR + "InternalServerError", "message": repr(exc)})

    def _dispatch(self, target: str, body: bytes) -> dict[str, Any]:
        operation = target.removeprefix(_TARGET) if target.startswith(_TARGET) else None
        handler = None if operation is None else self._operations.get(operation)
        if handler is None:
            raise DynamoError(
                _UNKNOWN_OPERATION, f"Unknown operation: {target or 'no X-Amz-Target'} (not served by bench.dynamo)"
            )
        params = orjson.loads(body) if body else {}
        if not isinstance(params, dict):
            raise DynamoError(_SERIALIZATION, "The request body must be a JSON object")
        return handler(params)

    def _table(self, name: Any) -> _Table:
        table = self._tables.get(name) if isinstance(name, str) else None
        if table is None:
            raise DynamoError(
                _ERROR + "ResourceNotFoundException", f"Requested resource not found: Table: {name} not found"
            )
        return table

    # Tables.

    def create_table(self, params: dict[str, Any]) -> dict[str, Any]:
        _allow(params, _CREATE_TABLE, "CreateTable")
        name = params["TableName"]
        if not isinstance(name, str) or _TABLE_NAME.fullmatch(name) is None:
            raise _invalid("TableName must be 3 to 255 characters of a-z, A-Z, 0-9, '_', '-' and '.'")
        if name in self._tables:
            raise DynamoError(_ERROR + "ResourceInUseException", f"Table already exists: {name}")
        hash_key, range_key = _key_schema(params["KeySchema"], params["AttributeDefinitions"])
        _check_options(params)
        table = self._tables[name] = _Table(_description(params, self._region), hash_key, range_key)
        return {"TableDescription": table.describe()}

    def describe_table(self, params: dict[str, Any]) -> dict[str, Any]:
        _allow(params, frozenset({"TableName"}), "DescribeTable")
        return {"Table": self._table(params["TableName"]).describe()}

    def list_tables(self, params: dict[str, Any]) -> dict[str, Any]:
        _allow(params, frozenset(), "ListTables")
        return {"TableNames": sorted(self._tables)}

    # Items.

    def get_item(self, params: dict[str, Any]) -> dict[str, Any]:
        _allow(params, _GET_ITEM, "GetItem")
        table = self._table(params["TableName"])
        key = table.key_of(params.get("Key"))
        _check_flag(params, "ConsistentRead")
        projection = _projection_of(params)
        names, _ = _bind(params, projection)
        item = table.get(*key)
        if item is None:
            return {}
        return {"Item": item if projection is None else _project(item, projection.attributes(names))}

    def update_item(self, params: dict[str, Any]) -> dict[str, Any]:
        _allow(params, _UPDATE_ITEM, "UpdateItem")
        table = self._table(params["TableName"])
        key = params.get("Key")
        partition, sort = table.key_of(key)
        returns = _choice(params, "ReturnValues", ("NONE", "ALL_OLD", "ALL_NEW"))
        on_failure = _choice(params, "ReturnValuesOnConditionCheckFailure", ("NONE", "ALL_OLD"))
        update = _update_of(params)
        condition = _condition_of(params)
        names, values = _bind(params, update, condition)
        targets = update.targets(names, table.key_names)
        old = table.get(partition, sort)
        if condition is not None and not condition.test({} if old is None else old, names, values):
            raise _condition_failed(old if on_failure == "ALL_OLD" else None)
        # An update of a missing item creates it from its key.
        new = update.apply(dict(cast(Item, key)) if old is None else old, targets, names, values)
        table.store(
            partition, sort, new, _checked_size(new, "Item size to update has exceeded the maximum allowed size")
        )
        if returns == "ALL_NEW":
            return {"Attributes": new}
        return {"Attributes": old} if returns == "ALL_OLD" and old is not None else {}

    def delete_item(self, params: dict[str, Any]) -> dict[str, Any]:
        _allow(params, _DELETE_ITEM, "DeleteItem")
        table = self._table(params["TableName"])
        partition, sort = table.key_of(params.get("Key"))
        condition = _condition_of(params)
        names, values = _bind(params, condition)
        old = table.get(partition, sort)
        if condition is not None and not condition.test({} if old is None else old, names, values):
            raise _condition_failed()
        table.remove(partition, sort)
        return {}

    def query(self, params: dict[str, Any]) -> dict[str, Any]:
        _allow(params, _QUERY, "Query")
        table = self._table(params["TableName"])
        text = _text(params, "KeyConditionExpression")
        if text is None:
            raise _unsupported("A Query without a KeyConditionExpression")
        key = _key_condition(text)
        condition = _condition_of(params, "FilterExpression")
        projection = _projection_of(params)
        _check_flag(params, "ConsistentRead")
        names, values = _bind(params, key, condition, projection)
        partition, sort = _key_bounds(key, table, names, values)
        start = self._start(table, partition, params.get("ExclusiveStartKey"))
        scanned, stopped = _read(table.partitions.get(partition), sort, start=start, limit=_limit(params))
        items = scanned if condition is None else [item for item in scanned if condition.test(item, names, values)]
        attributes = None if projection is None else projection.attributes(names)
        answer: dict[str, Any] = {
            "Items": items if attributes is None else [_project(item, attributes) for item in items],
            "Count": len(items),
            "ScannedCount": len(scanned),
        }
        if stopped:
            answer["LastEvaluatedKey"] = table.key_item(scanned[-1])
        return answer

    @staticmethod
    def _start(table: _Table, partition: str, key: Any) -> str | None:
        if key is None:
            return None
        start_partition, start = table.key_of(key)
        if start_partition != partition:
            raise _invalid("The provided starting key is outside query boundaries based on provided conditions")
        return start

    # Batches and transactions.

    def batch_write_item(self, params: dict[str, Any]) -> dict[str, Any]:
        requests = _request_items(params, "BatchWriteItem", len, _BATCH_WRITES)
        writes = [write for name, entries in requests.items() for write in self._batch_writes(name, entries)]
        for table, partition, sort, item, size in writes:
            if item is None:
                table.remove(partition, sort)
            else:
                table.store(partition, sort, item, size)
        return {"UnprocessedItems": {}}

    def _batch_writes(self, name: str, entries: Any) -> list[BatchWrite]:
        table = self._table(name)
        if not isinstance(entries, list) or not entries:
            raise _invalid(f"RequestItems of {name} must be a non-empty list of write requests")
        writes: list[BatchWrite] = []
        seen: set[tuple[str, str]] = set()
        for entry in entries:
            write = _batch_write(table, entry)
            if (write[1], write[2]) in seen:
                raise _invalid("Provided list of item keys contains duplicates")
            seen.add((write[1], write[2]))
            writes.append(write)
        return writes

    def batch_get_item(self, params: dict[str, Any]) -> dict[str, Any]:
        requests = _request_items(params, "BatchGetItem", lambda request: len(request.get("Keys", ())), _BATCH_GETS)
        responses: dict[str, list[Item]] = {}
        unprocessed: dict[str, Any] = {}
        used = 0
        for name, request in requests.items():
            responses[name], left, used = self._batch_get(name, request, used)
            if left:
                unprocessed[name] = {**request, "Keys": left}
        return {"Responses": responses, "UnprocessedKeys": unprocessed}

    def _batch_get(self, name: str, request: dict[str, Any], used: int) -> tuple[list[Item], list[Item], int]:
        """The items of one table's keys that fit in the call's 16 MB (moto's rule), the keys left, the bytes used."""
        _allow(request, _BATCH_GET_TABLE, f"BatchGetItem's table {name}")
        table = self._table(name)
        _check_flag(request, "ConsistentRead")
        found: list[Item] = []
        left: list[Item] = []
        for key in _distinct_keys(table, request["Keys"]):
            entry = table.entry(*table.key_of(key))
            if entry is None:
                continue
            item, size = entry
            if used + size > _BATCH_GET_BYTES:
                left.append(key)
                continue
            found.append(item)
            used += size
        return found, left, used

    def transact_write_items(self, params: dict[str, Any]) -> dict[str, Any]:
        _allow(params, _TRANSACT, "TransactWriteItems")
        entries = params["TransactItems"]
        if not isinstance(entries, list) or not 1 <= len(entries) <= _TRANSACT_ITEMS:
            raise _invalid(f"TransactItems must hold 1 to {_TRANSACT_ITEMS} items")
        token = _text(params, "ClientRequestToken")
        fingerprint = orjson.dumps(entries, option=orjson.OPT_SORT_KEYS)
        if token is not None and self._repeated(token, fingerprint):
            return {}
        writes = [self._transact_write(entry) for entry in entries]
        if len({(write.table.name, write.key) for write in writes}) != len(writes):
            raise _invalid("Transaction request cannot include multiple operations on one item")
        if not all(write.passed for write in writes):
            reasons = [write.reason() for write in writes]
            codes = ", ".join(reason["Code"] for reason in reasons)
            raise DynamoError(
                _ERROR + "TransactionCanceledException",
                f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
                members={"CancellationReasons": reasons},
            )
        for write in writes:
            write.commit()
        if token is not None:
            self._tokens[token] = (fingerprint, time.monotonic())
        return {}

    def _repeated(self, token: str, fingerprint: bytes) -> bool:
        """Whether a transaction with ``token`` succeeded in the last 10 minutes (with other items: an error)."""
        expired = time.monotonic() - _TOKEN_SECONDS
        while self._tokens:
            oldest, (_, at) = next(iter(self._tokens.items()))
            if at > expired:
                break
            del self._tokens[oldest]
        seen = self._tokens.get(token)
        if seen is None:
            return False
        if seen[0] != fingerprint:
            raise DynamoError(
                _ERROR + "IdempotentParameterMismatchException",
                "The request uses the same client token as a previous, but non-identical request.",
            )
        return True

    def _transact_write(self, entry: Any) -> _Write:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise _invalid("A TransactItem must hold exactly one of ConditionCheck, Put, Update or Delete")
        [(kind, request)] = entry.items()
        if kind == "Update":
            return self._transact_update(request)
        if kind == "Delete":
            _allow(request, _TRANSACT_DELETE, "TransactWriteItems' Delete")
            table = self._table(request["TableName"])
            return _Write(table, table.key_of(request.get("Key")))
        raise _unsupported(f"The TransactItem {kind}")

    def _transact_update(self, request: dict[str, Any]) -> _Write:
        _allow(request, _TRANSACT_UPDATE, "TransactWriteItems' Update")
        table = self._table(request["TableName"])
        key = request.get("Key")
        write = _Write(table, table.key_of(key))
        update = _update_of(request)
        condition = _condition_of(request)
        names, values = _bind(request, update, condition)
        targets = update.targets(names, table.key_names)
        old = table.get(*write.key)
        write.passed = condition is None or condition.test({} if old is None else old, names, values)
        if write.passed:
            write.new = update.apply(dict(cast(Item, key)) if old is None else old, targets, names, values)
            write.size = _checked_size(write.new, "Item size to update has exceeded the maximum allowed size")
        return write


def _distinct_keys(table: _Table, keys: Any) -> list[Item]:
    if not isinstance(keys, list) or not keys:
        raise _invalid("Keys must be a non-empty list")
    if len({table.key_of(key) for key in keys}) != len(keys):
        raise _invalid("Provided list of item keys contains duplicates")
    return keys


def _batch_write(table: _Table, entry: Any) -> BatchWrite:
    if isinstance(entry, dict) and entry.keys() == {"PutRequest"}:
        request = entry["PutRequest"]
        _allow(request, frozenset({"Item"}), "BatchWriteItem's PutRequest")
        partition, sort, size = table.checked_item(request.get("Item"))
        return table, partition, sort, request["Item"], size
    if isinstance(entry, dict) and entry.keys() == {"DeleteRequest"}:
        request = entry["DeleteRequest"]
        _allow(request, frozenset({"Key"}), "BatchWriteItem's DeleteRequest")
        return table, *table.key_of(request.get("Key")), None, 0
    raise _invalid("A write request must hold exactly one of PutRequest and DeleteRequest")


# HTTP/1.1: just enough of it for DynamoDB's clients, kept alive and pipelined.

_HEADERS = re.compile(rb"\r\n(content-length|x-amz-target|connection|transfer-encoding|expect)[ \t]*:([^\r\n]*)", re.I)
_STATUS = {200: b"200 OK", 400: b"400 Bad Request", 500: b"500 Internal Server Error"}
# Request ids: unique within the process, and across processes by their random start.
_REQUEST_PREFIX = uuid.uuid4().hex[:20].upper().encode()
_REQUEST_NUMBERS = itertools.count()


class _BadRequest(Exception):
    """A request this server cannot read: it answers with ``status`` and closes the connection."""

    def __init__(self, status: bytes) -> None:
        super().__init__(status.decode())
        self.status = status

    def answer(self) -> bytes:
        return b"HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % self.status


@dataclass(frozen=True, slots=True)
class _Head:
    target: str
    length: int
    close: bool


def _head(head: bytes) -> _Head:
    """A request's line and headers (those this server reads)."""
    line = head.split(b"\r\n", 1)[0].split(b" ")
    if len(line) != 3 or line[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise _BadRequest(b"400 Bad Request")
    fields = {name.lower(): value.strip() for name, value in _HEADERS.findall(head)}
    if b"transfer-encoding" in fields:
        # DynamoDB's clients send a Content-Length.
        raise _BadRequest(b"411 Length Required")
    if b"expect" in fields:
        # DynamoDB's clients send no Expect: the body follows the headers.
        raise _BadRequest(b"417 Expectation Failed")
    length = fields.get(b"content-length", b"0")
    if not length.isdigit():
        raise _BadRequest(b"400 Bad Request")
    if int(length) > _BODY_BYTES:
        raise _BadRequest(b"413 Content Too Large")
    connection = fields.get(b"connection", b"").lower()
    close = b"close" in connection if line[2] == b"HTTP/1.1" else b"keep-alive" not in connection
    target = fields.get(b"x-amz-target", b"").decode("latin-1") if line[0] == b"POST" else ""
    return _Head(target, int(length), close)


def _response(status: int, body: bytes, *, close: bool) -> bytes:
    return (
        b"HTTP/1.1 %s\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: %d\r\n"
        b"x-amz-crc32: %d\r\nx-amzn-RequestId: %s%032d\r\n%s\r\n%s"
        % (
            _STATUS[status],
            len(body),
            zlib.crc32(body),
            _REQUEST_PREFIX,
            next(_REQUEST_NUMBERS),
            b"Connection: close\r\n" if close else b"",
            body,
        )
    )


class _Connection(asyncio.Protocol):
    """One client's connection: requests are answered in order, as soon as each has arrived whole."""

    def __init__(self, database: Database, connections: set[_Connection]) -> None:
        self._database = database
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._pending = bytearray()
        self._head: _Head | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)
        with contextlib.suppress(OSError, AttributeError, TypeError):
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._transport = None

    def pause_writing(self) -> None:
        # A client that does not read its answers gets no more of them read.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        buffer: bytes | bytearray = data
        if self._pending:
            self._pending += data
            buffer = self._pending
        answers: list[bytes] = []
        try:
            used, close = self._serve(buffer, answers)
        except _BadRequest as bad:
            answers.append(bad.answer())
            used, close = len(buffer), True
        if buffer is self._pending:
            del self._pending[:used]
        elif used < len(data):
            self._pending += data[used:]
        transport = self._transport
        if transport is not None and answers:
            # Pipelined answers leave in one write.
            transport.write(answers[0] if len(answers) == 1 else b"".join(answers))
        if transport is not None and close:
            transport.close()

    def _serve(self, buffer: bytes | bytearray, answers: list[bytes]) -> tuple[int, bool]:
        """Answer every whole request in ``buffer``; how much of it was read, and whether to close."""
        at = 0
        while True:
            head = self._head
            if head is None:
                end = buffer.find(b"\r\n\r\n", at)
                if end < 0:
                    if len(buffer) - at > _HEAD_BYTES:
                        raise _BadRequest(b"431 Request Header Fields Too Large")
                    return at, False
                head = self._head = _head(bytes(buffer[at:end]))
                at = end + 4
            if len(buffer) - at < head.length:
                return at, False
            body = bytes(buffer[at : at + head.length])
            at += head.length
            self._head = None
            status, payload = self._database.call(head.target, body)
            answers.append(_response(status, payload, close=head.close))
            if head.close:
                return at, True


async def serve(host: str, port: int, *, region: str) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    database = Database(region)
    connections: set[_Connection] = set()
    server = await loop.create_server(
        lambda: _Connection(database, connections), host, port, backlog=_BACKLOG, reuse_address=True
    )
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    # What is loaded by now lives as long as the process: the collector need not walk it again. A request's
    # objects die by reference counting; collecting every 700 allocations (the default) only finds the rare cycle.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        await stopped.wait()
    finally:
        server.close()
        for connection in list(connections):
            connection.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.host, args.port, region=region))


class DynamoServer(DynamoDBEndpoint):
    """This server in a child process: the bench's DynamoDB in place of ``MotoServer``."""

    name = "DynamoDB stand-in (bench.dynamo)"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.dynamo", "--port", str(self.port)]


if __name__ == "__main__":
    main()
