"""Kubernetes label selectors: parse the ``labelSelector`` query string and match label maps.

The HPA controller turns its ``metric.selector`` (a ``metav1.LabelSelector``) into the string
form and sends it as ``?labelSelector=...``; we must read every form that conversion can produce
(``=``/``==``, ``!=``, ``in``, ``notin``, exists, ``!key``) and, since ``kubectl get --raw`` users
write selectors by hand, the integer comparisons ``>``/``<`` of the full grammar too. The
semantics follow ``k8s.io/apimachinery/pkg/labels``:

- ``k=v`` / ``k in (..)`` need the label present with a listed value;
- ``k!=v`` / ``k notin (..)`` also match when the label is absent;
- ``k>n`` / ``k<n`` need the label present with an integer value;
- requirements are ANDed; the empty selector matches everything.

Pure: no I/O, so it is property-tested on its own. Bad input raises :class:`SelectorError`
whose message says what was expected and at which character, never a bare traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from autoscaler.errors import InputError, quoted

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_NAME_RE = re.compile(_NAME)
_DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INTEGER_RE = re.compile(r"[-+]?[0-9]+")
_MAX_NAME = 63
_MAX_PREFIX = 253


class SelectorError(InputError):
    """A label selector string that cannot be parsed; ``position`` is a 0-based offset."""

    def __init__(self, selector: str, position: int, problem: str) -> None:
        self.selector = selector
        self.position = position
        self.problem = problem
        super().__init__(
            f"invalid label selector {quoted(selector)} at character {position}: {problem}"
        )


class Operator(Enum):
    """The operators of the selector grammar (``selection.Operator`` in apimachinery)."""

    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ANDed term of a selector; ``values`` is sorted so equal terms compare equal."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        op = self.operator
        if op is Operator.EXISTS:
            return present
        if op is Operator.DOES_NOT_EXIST:
            return not present
        if op in (Operator.EQUALS, Operator.IN):
            return present and labels[self.key] in self.values
        if op in (Operator.NOT_EQUALS, Operator.NOT_IN):
            return not present or labels[self.key] not in self.values
        # gt / lt: the label must hold an integer (apimachinery parses it as int64)
        if not present or not _INTEGER_RE.fullmatch(labels[self.key]):
            return False
        have, bound = int(labels[self.key]), int(self.values[0])
        return have > bound if op is Operator.GREATER_THAN else have < bound

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        if op in (Operator.IN, Operator.NOT_IN):
            # "()" would be an empty set, so the set {""} is written "(,)" as apimachinery reads it
            listed = ",".join(self.values) if self.values != ("",) else ","
            return f"{self.key} {op.value} ({listed})"
        symbol = {
            Operator.EQUALS: "=",
            Operator.NOT_EQUALS: "!=",
            Operator.GREATER_THAN: ">",
            Operator.LESS_THAN: "<",
        }[op]
        return f"{self.key}{symbol}{self.values[0]}"


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed selector: requirements sorted by key (the canonical order apimachinery prints)."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        """The canonical string; ``parse(str(s)) == s`` for every parsed selector."""
        return ",".join(str(r) for r in self.requirements)


def parse(text: str) -> Selector:
    """Parse a selector string; raise :class:`SelectorError` on any malformed part."""
    parser = _Parser(text)
    requirements = parser.selector()
    ordered = sorted(requirements, key=lambda r: (r.key, r.operator.value, r.values))
    return Selector(tuple(ordered))


def validate_key(key: str) -> str | None:
    """Why ``key`` is not a valid label key (``[prefix/]name``), or None when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "the prefix before '/' must not be empty"
        if len(prefix) > _MAX_PREFIX or not _DNS_SUBDOMAIN_RE.fullmatch(prefix):
            return (
                f"prefix {quoted(prefix)} must be a DNS subdomain "
                "(lower case, at most 253 characters)"
            )
    if not name:
        return "the name part must not be empty"
    if len(name) > _MAX_NAME:
        return f"name {quoted(name)} is longer than {_MAX_NAME} characters"
    if not _NAME_RE.fullmatch(name):
        return (
            f"name {quoted(name)} must be alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return None


def validate_value(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None when it is (empty is valid)."""
    if value == "":
        return None
    if len(value) > _MAX_NAME:
        return f"value {quoted(value)} is longer than {_MAX_NAME} characters"
    if not _NAME_RE.fullmatch(value):
        return (
            f"value {quoted(value)} must be alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return None


_TOKEN_RE = re.compile(r"[^\s,()=!<>]+")
"""A key, value or keyword: anything up to whitespace or a symbol of the grammar."""


class _Parser:
    """A small recursive-descent parser over the selector string (one instance per parse)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, problem: str, position: int | None = None) -> SelectorError:
        return SelectorError(self.text, self.pos if position is None else position, problem)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_space()
        return self.pos >= len(self.text)

    def peek(self, literal: str) -> bool:
        self.skip_space()
        return self.text.startswith(literal, self.pos)

    def expect(self, literal: str, what: str) -> None:
        if not self.peek(literal):
            raise self.fail(f"expected {what}, found {self.describe_here()}")
        self.pos += len(literal)

    def describe_here(self) -> str:
        self.skip_space()
        if self.pos >= len(self.text):
            return "the end of the selector"
        return repr(self.text[self.pos : self.pos + 10])

    def token(self) -> tuple[str, int]:
        """The next key/value/keyword and where it starts; '' when a symbol or the end is next."""
        self.skip_space()
        m = _TOKEN_RE.match(self.text, self.pos)
        if m is None:
            return "", self.pos
        self.pos = m.end()
        return m.group(), m.start()

    def selector(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        if self.at_end():
            return requirements
        while True:
            requirements.append(self.requirement())
            if self.at_end():
                return requirements
            self.expect(",", "',' between requirements")
            if self.at_end():
                raise self.fail("expected a requirement after ','")

    def key(self) -> str:
        key, start = self.token()
        if not key:
            raise self.fail(f"expected a label key, found {self.describe_here()}")
        problem = validate_key(key)
        if problem is not None:
            raise self.fail(f"invalid key: {problem}", start)
        return key

    def value(self) -> str:
        value, start = self.token()
        problem = validate_value(value)
        if problem is not None:
            raise self.fail(f"invalid value: {problem}", start)
        return value

    def requirement(self) -> Requirement:
        if self.peek("!") and not self.peek("!="):
            self.pos += 1
            return Requirement(self.key(), Operator.DOES_NOT_EXIST)
        key = self.key()
        if self.at_end() or self.peek(","):
            return Requirement(key, Operator.EXISTS)
        for symbol, op in (("==", Operator.EQUALS), ("!=", Operator.NOT_EQUALS),
                           ("=", Operator.EQUALS)):  # fmt: skip
            if self.peek(symbol):
                self.pos += len(symbol)
                return Requirement(key, op, (self.value(),))
        for symbol, op in ((">", Operator.GREATER_THAN), ("<", Operator.LESS_THAN)):
            if self.peek(symbol):
                self.pos += 1
                bound, start = self.token()
                if not _INTEGER_RE.fullmatch(bound):
                    raise self.fail(f"'{symbol}' needs an integer, found {quoted(bound)}", start)
                return Requirement(key, op, (bound,))
        word, start = self.token()
        if word == "in":
            return Requirement(key, Operator.IN, self.value_set())
        if word == "notin":
            return Requirement(key, Operator.NOT_IN, self.value_set())
        found = repr(word) if word else self.describe_here()
        raise self.fail(
            f"expected one of '=', '==', '!=', 'in', 'notin', '>', '<', ',' after key "
            f"{quoted(key)}, found {found}",
            start,
        )

    def value_set(self) -> tuple[str, ...]:
        self.expect("(", "'(' to open the value set")
        values: set[str] = set()
        if self.peek(")"):
            raise self.fail("a value set must hold at least one value")
        while True:
            values.add(self.value())
            if self.peek(")"):
                self.pos += 1
                return tuple(sorted(values))
            self.expect(",", "',' or ')' in the value set")
