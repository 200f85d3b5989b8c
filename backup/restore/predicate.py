"""A safe predicate language: one boolean expression over a table's columns, never a statement.

`parse` turns text such as ``administered_on = '2021-10-13' AND dose_number = 1`` into a small
AST and `render` prints it back in the canonical form that `parse` reads; `from_filter` builds
the same AST from a structured filter (GraphQL). Compiling to SQL and chunk pruning live in
backup/restore/predicate_sql.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from backup.restore.errors import PredicateError

COMPARISONS = ("=", "<>", "<", "<=", ">", ">=")
FUNCTIONS = ("lower", "upper")
KEYWORDS = frozenset({"and", "or", "not", "in", "between", "is", "null", "true", "false"})
# Words that only make sense in a statement or subquery: refused by name for a clear message.
STATEMENT_WORDS = frozenset({"select", "from", "where", "union", "insert", "update", "delete",
                             "drop", "alter", "create", "truncate", "grant", "copy", "with",
                             "exists", "into", "values", "execute", "call", "do"})


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Literal:
    """A string, number, boolean or NULL (value None)."""

    value: str | int | Decimal | bool | None


@dataclass(frozen=True)
class Call:
    function: str
    argument: Expr


@dataclass(frozen=True)
class Compare:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class InList:
    operand: Expr
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class Between:
    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    operand: Expr
    negated: bool = False


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Column | Literal | Call | Compare | InList | Between | IsNull | And | Or | Not


# --- tokens -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Token:
    kind: str  # name, string, number, op, punct, end
    text: str
    at: int


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<op><>|!=|<=|>=|=|<|>)
  | (?P<punct>[(),])
""", re.VERBOSE)


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        if text.startswith(("--", "/*"), at):
            raise _error(text, at, "comments are not allowed")
        match = _TOKEN.match(text, at)
        if match is None:
            what = "an unterminated string" if text[at] == "'" else f"{text[at]!r}"
            hint = " (one expression only, no statements)" if text[at] == ";" else ""
            raise _error(text, at, f"unexpected {what}{hint}")
        kind = match.lastgroup or ""
        if kind != "space":
            value = match.group()
            tokens.append(_Token(kind, "<>" if value == "!=" else value, at))
        at = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _error(text: str, at: int, message: str) -> PredicateError:
    near = text[at:at + 20] or "end of input"
    return PredicateError(f"bad predicate at character {at + 1} (near {near!r}): {message}")


# --- parser (precedence: OR < AND < NOT < comparison) --------------------------------------

class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def keyword(self, word: str) -> bool:
        if self.token.kind == "name" and self.token.text.lower() == word:
            self.index += 1
            return True
        return False

    def punct(self, char: str) -> bool:
        if self.token.kind == "punct" and self.token.text == char:
            self.index += 1
            return True
        return False

    def expect_punct(self, char: str) -> None:
        if not self.punct(char):
            raise self.fail(f"expected {char!r}")

    def fail(self, message: str) -> PredicateError:
        return _error(self.text, self.token.at, message)

    def parse(self) -> Expr:
        if self.token.kind == "end":
            raise self.fail("the predicate is empty")
        expr = self.disjunction()
        if self.token.kind != "end":
            raise self.fail("expected AND, OR or the end of the expression")
        return expr

    def disjunction(self) -> Expr:
        items = [self.conjunction()]
        while self.keyword("or"):
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Expr:
        items = [self.negation()]
        while self.keyword("and"):
            items.append(self.negation())
        return items[0] if len(items) == 1 else And(tuple(items))

    def negation(self) -> Expr:
        if self.keyword("not"):
            return Not(self.negation())
        return self.condition()

    def condition(self) -> Expr:
        left = self.operand()
        if self.token.kind == "op":
            op = self.token.text
            self.index += 1
            return Compare(op, left, self.operand())
        if self.keyword("is"):
            negated = self.keyword("not")
            if not self.keyword("null"):
                raise self.fail("expected NULL after IS / IS NOT")
            return IsNull(left, negated)
        negated = self.keyword("not")
        if self.keyword("in"):
            return InList(left, self.literal_list(), negated)
        if self.keyword("between"):
            low = self.operand()
            if not self.keyword("and"):
                raise self.fail("expected AND in BETWEEN low AND high")
            return Between(left, low, self.operand(), negated)
        if negated:
            raise self.fail("expected IN or BETWEEN after NOT")
        if not isinstance(left, Literal) or isinstance(left.value, bool):
            return left
        raise self.fail("expected a comparison, IN, BETWEEN or IS NULL")

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect_punct("(")
        values = [self.literal()]
        while self.punct(","):
            values.append(self.literal())
        self.expect_punct(")")
        return tuple(values)

    def literal(self) -> Literal:
        token = self.token
        operand = self.operand()
        if not isinstance(operand, Literal):
            raise _error(self.text, token.at, "IN lists hold literal values only")
        return operand

    def operand(self) -> Expr:
        token = self.token
        if self.punct("("):
            expr = self.disjunction()
            self.expect_punct(")")
            return expr
        self.index += 1
        if token.kind == "string":
            return Literal(token.text[1:-1].replace("''", "'"))
        if token.kind == "number":
            return Literal(Decimal(token.text) if "." in token.text else int(token.text))
        if token.kind == "name":
            word = token.text.lower()
            if word in ("true", "false"):
                return Literal(word == "true")
            if word == "null":
                return Literal(None)
            if self.punct("("):
                if word not in FUNCTIONS:
                    raise _error(self.text, token.at,
                                 f"unknown function {token.text!r}; allowed: {', '.join(FUNCTIONS)}")
                argument = self.disjunction()
                self.expect_punct(")")
                return Call(word, argument)
            if word in STATEMENT_WORDS:
                raise _error(self.text, token.at, f"{token.text.upper()} is not allowed: "
                             "give one expression, not a statement or subquery")
            if word in KEYWORDS:
                raise _error(self.text, token.at, f"unexpected keyword {token.text.upper()}")
            return Column(word)
        self.index -= 1
        if token.kind == "end":
            raise self.fail("the expression ends too early")
        raise self.fail(f"unexpected {token.text!r}")


def parse(text: str) -> Expr:
    """Parse one boolean expression; raise PredicateError pointing at the offending token."""
    return _Parser(text).parse()


# --- structured filters (GraphQL input) ------------------------------------------------------

def from_filter(column: str, operator: str, values: Sequence[str | int | None]) -> Expr:
    """Build the AST for one structured condition: eq, in, between or isNull on a column."""
    target = Column(column.lower())
    literals = tuple(Literal(value) for value in values)
    arity = {"eq": 1, "between": 2, "isNull": 0}
    if operator in arity and len(literals) != arity[operator]:
        raise PredicateError(f"filter {operator} on {column!r} takes {arity[operator]} value(s), "
                             f"got {len(literals)}")
    if operator == "eq":
        return Compare("=", target, literals[0])
    if operator == "in":
        if not literals:
            raise PredicateError(f"filter in on {column!r} needs at least one value")
        return InList(target, literals)
    if operator == "between":
        return Between(target, literals[0], literals[1])
    if operator == "isNull":
        return IsNull(target)
    raise PredicateError(f"unknown filter operator {operator!r}; use eq, in, between or isNull")


def conjunction(parts: Sequence[Expr]) -> Expr | None:
    """AND the parts together (None when there are none)."""
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


# --- reading an expression -------------------------------------------------------------

def columns_of(expr: Expr) -> set[str]:
    """The column names the expression reads."""
    match expr:
        case Column(name):
            return {name}
        case Literal():
            return set()
        case Call(_, argument):
            return columns_of(argument)
        case Compare(_, left, right):
            return columns_of(left) | columns_of(right)
        case InList(operand, _, _):
            return columns_of(operand)
        case Between(operand, low, high, _):
            return columns_of(operand) | columns_of(low) | columns_of(high)
        case IsNull(operand, _):
            return columns_of(operand)
        case And(items) | Or(items):
            return set().union(*(columns_of(item) for item in items))
        case Not(item):
            return columns_of(item)
    raise TypeError(expr)


# --- canonical text ------------------------------------------------------------------------

def render(expr: Expr) -> str:
    """The canonical text of an expression; parse(render(e)) == e."""
    match expr:
        case Column(name):
            return name
        case Literal(value):
            if value is None:
                return "NULL"
            if isinstance(value, bool):
                return "TRUE" if value else "FALSE"
            if isinstance(value, str):
                return "'" + value.replace("'", "''") + "'"
            return str(value)
        case Call(function, argument):
            return f"{function}({render(argument)})"
        case Compare(op, left, right):
            return f"({render(left)} {op} {render(right)})"
        case InList(operand, values, negated):
            listed = ", ".join(render(value) for value in values)
            return f"({render(operand)} {'NOT IN' if negated else 'IN'} ({listed}))"
        case Between(operand, low, high, negated):
            word = "NOT BETWEEN" if negated else "BETWEEN"
            return f"({render(operand)} {word} {render(low)} AND {render(high)})"
        case IsNull(operand, negated):
            return f"({render(operand)} IS {'NOT NULL' if negated else 'NULL'})"
        case And(items):
            return "(" + " AND ".join(render(item) for item in items) + ")"
        case Or(items):
            return "(" + " OR ".join(render(item) for item in items) + ")"
        case Not(item):
            return f"(NOT {render(item)})"
    raise TypeError(expr)


