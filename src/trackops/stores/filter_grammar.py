"""MLflow's search filter and order_by grammar: a tokenizer, a parser and per-entity rules.

A filter is comparisons joined by AND (no OR, no parentheses)::

    filter      := comparison (AND comparison)*
    comparison  := identifier ( CMP value | LIKE str | ILIKE str | [NOT] IN '(' str, ... ')'
                              | IS [NOT] NULL )
    identifier  := [prefix '.'] key        e.g. metrics.acc, tags.`my tag`, params."p 1", status
    value       := 'single' | "double" | number          number: -1, 2.5, .5, 1e-3

Keywords (AND, LIKE, ILIKE, IN, NOT, IS, NULL, ASC, DESC) are case-insensitive; prefixes and keys
are not. A key is bare (letters, digits, underscores, dots: ``metrics.train.loss`` is the metric
``train.loss``), or quoted whole with backquotes or double quotes. As in MLflow, string literals
are taken verbatim between their quotes: ``'it''s'`` is the five characters ``it''s``.

Which prefixes, attributes, comparators and value types are allowed depends on the entity being
searched (`RUNS`, `EXPERIMENTS`, `REGISTERED_MODELS`, `MODEL_VERSIONS`, `LOGGED_MODELS`), following
MLflow 3.17. Every error is an `InvalidParameterValue` that names the offending token and its
0-based position, e.g. ``Invalid filter "metrics.acc >> 1": unexpected token '>' at position 13``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from trackops.errors import InvalidParameterValue

# --- tokens -----------------------------------------------------------------------------------

WORD, BACKQUOTED, DQUOTED, SQUOTED, NUMBER, CMP, LPAREN, RPAREN, COMMA, DOT, END = (
    "word", "backquoted", "dquoted", "squoted", "number", "cmp", "(", ")", ",", ".", "end")


MAX_FILTER_LENGTH = 64 * 1024
"""Longest filter string or order_by clause a search accepts (characters)."""


@dataclasses.dataclass(frozen=True)
class Token:
    kind: str
    text: str  # the source text of the token
    pos: int  # 0-based offset in the filter string

    @property
    def value(self) -> str:
        """Quoted tokens without their quotes (verbatim inside), others as written."""
        if self.kind in (BACKQUOTED, DQUOTED, SQUOTED):
            return self.text[1:-1]
        return self.text

    def is_keyword(self, *words: str) -> bool:
        return self.kind == WORD and self.text.upper() in words


_NUMBER_RE = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_WORD_RE = re.compile(r"[A-Za-z0-9_]+")
# Inside single quotes MLflow (via sqlparse) lets '' and \' stand for a quote, without unescaping.
_SQUOTED_RE = re.compile(r"'(?:''|\\.|[^'\\])*'", re.DOTALL)
_DQUOTED_RE = re.compile(r'"(?:""|\\.|[^"\\])*"', re.DOTALL)
_BACKQUOTED_RE = re.compile(r"`[^`]*`")


class GrammarError(InvalidParameterValue):
    """A malformed filter or order_by; `position` is where in the text the problem starts."""

    def __init__(self, message: str, *, position: int | None = None):
        super().__init__(message)
        self.position = position


def _fail(what: str, text: str, problem: str, position: int | None = None) -> GrammarError:
    where = f" at position {position}" if position is not None else ""
    return GrammarError(f'Invalid {what} "{text}": {problem}{where}', position=position)


def _unexpected(what: str, text: str, tok: Token) -> GrammarError:
    if tok.kind == END:
        return _fail(what, text, f"unexpected end of {what}", tok.pos)
    return _fail(what, text, f"unexpected token {_show(tok.text)}", tok.pos)


def _show(s: str) -> str:
    return "'" + s + "'" if "'" not in s else '"' + s + '"'


def tokenize(text: str, what: str = "filter") -> list[Token]:
    """Split `text` into tokens, ending with an END token; a stray character is a `GrammarError`."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        after_dot = bool(tokens) and tokens[-1].kind == DOT and tokens[-1].pos + 1 == i
        m = None
        if ch == "'":
            m = _SQUOTED_RE.match(text, i)
            kind = SQUOTED
        elif ch == '"':
            m = _DQUOTED_RE.match(text, i)
            kind = DQUOTED
        elif ch == "`":
            m = _BACKQUOTED_RE.match(text, i)
            kind = BACKQUOTED
        if ch in "'\"`":
            if m is None:
                raise _fail(what, text, f"unterminated quote {_show(ch)}", i)
            tokens.append(Token(kind, m.group(), i))
            i = m.end()
            continue
        if after_dot and _WORD_RE.match(text, i):
            # a key part right after a dot: `metrics.2fast`, `tags.and`
            m = _WORD_RE.match(text, i)
            if m is None:  # a letter outside the identifier alphabet
                raise _fail(what, text, f"unexpected character {_show(ch)}", i)
            tokens.append(Token(WORD, m.group(), i))
            i = m.end()
            continue
        if ch == "." and tokens and tokens[-1].kind in (WORD, BACKQUOTED, DQUOTED) \
                and tokens[-1].pos + len(tokens[-1].text) == i:
            tokens.append(Token(DOT, ch, i))  # `metrics.2fast`: a dot after a name separates parts
            i += 1
            continue
        if ch.isdigit() or (ch in "-." and i + 1 < n and text[i + 1].isdigit()):
            m = _NUMBER_RE.match(text, i)
            if m is None:  # a digit the grammar does not read (`²`, `١`): str.isdigit is wider than ASCII
                raise _fail(what, text, f"unexpected character {_show(ch)}", i)
            end = m.end()
            # a number glued to letters (`1and`, `0x10`, `1e`) is one bad token, not two good ones
            glued = _WORD_RE.match(text, end) if end < n else None
            if glued:
                raise _fail(what, text, f"invalid number {_show(text[i:glued.end()])}", i)
            tokens.append(Token(NUMBER, m.group(), i))
            i = end
            continue
        if ch.isalpha() or ch == "_":
            m = _WORD_RE.match(text, i)
            if m is None:  # a letter outside the identifier alphabet
                raise _fail(what, text, f"unexpected character {_show(ch)}", i)
            tokens.append(Token(WORD, m.group(), i))
            i = m.end()
            continue
        two = text[i:i + 2]
        if two in ("!=", "<=", ">="):
            tokens.append(Token(CMP, two, i))
            i += 2
            continue
        if ch in "=<>":
            tokens.append(Token(CMP, ch, i))
            i += 1
            continue
        if ch in "().,":
            tokens.append(Token(ch, ch, i))
            i += 1
            continue
        raise _fail(what, text, f"unexpected character {_show(ch)}", i)
    tokens.append(Token(END, "", n))
    return tokens


# --- raw syntax -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Identifier:
    prefix: str | None  # as written (unquoted), None when there is no prefix
    key: str
    pos: int
    text: str


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One parsed and validated comparison: ``kind`` is attribute/metric/param/tag/dataset."""

    kind: str
    key: str
    op: str  # '=', '!=', '<', '<=', '>', '>=', 'LIKE', 'ILIKE', 'IN', 'NOT IN', 'IS NULL', 'IS NOT NULL'
    value: str | int | float | tuple[str, ...] | None
    position: int = 0


@dataclasses.dataclass(frozen=True)
class OrderKey:
    """One parsed order_by clause."""

    kind: str
    key: str
    ascending: bool = True


class _Parser:
    def __init__(self, text: str, what: str):
        self.text = text
        self.what = what
        self.tokens = tokenize(text, what)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def error(self, tok: Token | None = None) -> GrammarError:
        return _unexpected(self.what, self.text, tok or self.tok)

    def fail(self, problem: str, pos: int | None) -> GrammarError:
        return _fail(self.what, self.text, problem, pos)

    def identifier(self) -> Identifier:
        start = self.tok
        parts: list[Token] = []
        while True:
            tok = self.tok
            if tok.kind not in (WORD, BACKQUOTED, DQUOTED) or (
                    tok.kind == WORD and not parts and tok.text.upper() in _RESERVED):
                raise self.error()
            parts.append(self.take())
            if self.tok.kind != DOT:
                break
            self.take()
        end = parts[-1].pos + len(parts[-1].text)
        source = self.text[start.pos:end]
        if len(parts) == 1:
            return Identifier(None, parts[0].value, start.pos, source)
        rest = parts[1:]
        if len(rest) > 1 and any(p.kind != WORD for p in rest):
            bad = next(p for p in rest if p.kind != WORD)
            raise self.fail(f"a quoted key must be the whole key, got {_show(bad.text)}", bad.pos)
        key = rest[0].value if len(rest) == 1 else ".".join(p.text for p in rest)
        return Identifier(parts[0].value, key, start.pos, source)

    def literal(self) -> Token:
        tok = self.tok
        if tok.kind in (SQUOTED, DQUOTED, NUMBER):
            return self.take()
        raise self.error()

    def string_list(self) -> tuple[Token, tuple[str, ...]]:
        open_tok = self.tok
        if open_tok.kind != LPAREN:
            raise self.error()
        self.take()
        values: list[str] = []
        while True:
            tok = self.tok
            if tok.kind == RPAREN and values:  # a trailing comma is allowed, as in MLflow
                break
            if tok.kind not in (SQUOTED, DQUOTED):
                if tok.kind == RPAREN:
                    raise self.fail("empty list", tok.pos)
                if tok.kind == NUMBER:
                    raise self.fail(f"expected a quoted string in the list, got {tok.text}", tok.pos)
                raise self.error()
            values.append(self.take().value)
            if self.tok.kind == COMMA:
                self.take()
                continue
            if self.tok.kind != RPAREN:
                raise self.error()
        self.take()
        return open_tok, tuple(values)


_RESERVED = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE"})


@dataclasses.dataclass(frozen=True)
class _RawComparison:
    ident: Identifier
    op: str
    op_pos: int
    value: Token | None  # literal token, or the '(' of a list
    items: tuple[str, ...] | None = None


def _parse_raw_filter(text: str) -> list[_RawComparison]:
    p = _Parser(text, "filter")
    out: list[_RawComparison] = []
    while True:
        ident = p.identifier()
        tok = p.tok
        if tok.kind == CMP:
            p.take()
            out.append(_RawComparison(ident, tok.text, tok.pos, p.literal()))
        elif tok.is_keyword("LIKE", "ILIKE"):
            p.take()
            out.append(_RawComparison(ident, tok.text.upper(), tok.pos, p.literal()))
        elif tok.is_keyword("IN"):
            p.take()
            paren, items = p.string_list()
            out.append(_RawComparison(ident, "IN", tok.pos, paren, items))
        elif tok.is_keyword("NOT"):
            p.take()
            if not p.tok.is_keyword("IN"):
                raise p.error()
            p.take()
            paren, items = p.string_list()
            out.append(_RawComparison(ident, "NOT IN", tok.pos, paren, items))
        elif tok.is_keyword("IS"):
            p.take()
            op = "IS NULL"
            if p.tok.is_keyword("NOT"):
                p.take()
                op = "IS NOT NULL"
            if not p.tok.is_keyword("NULL"):
                raise p.error()
            p.take()
            out.append(_RawComparison(ident, op, tok.pos, None))
        else:
            raise p.error()
        if p.tok.kind == END:
            return out
        if not p.tok.is_keyword("AND"):
            raise p.error()
        p.take()


# --- per-entity rules -------------------------------------------------------------------------

NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE"})
LIST_OPS = frozenset({"IN", "NOT IN"})
NULL_OPS = frozenset({"IS NULL", "IS NOT NULL"})


@dataclasses.dataclass(frozen=True)
class Attribute:
    """A searchable attribute: its column name in the table and whether it holds numbers."""

    column: str
    numeric: bool = False
    lists: bool = False  # accepts IN / NOT IN
    ops: frozenset[str] | None = None  # overrides the default comparators for its type
    integer: bool = False  # a numeric attribute that takes whole numbers only
    quoted_number: bool = False  # also takes its number quoted ('3'), as MLflow allows for versions


@dataclasses.dataclass(frozen=True)
class Grammar:
    """What one entity's search accepts."""

    name: str
    prefixes: Mapping[str, str]  # prefix as written -> kind
    attributes: Mapping[str, Attribute]  # filterable attribute keys (aliases included)
    order_attributes: Mapping[str, Attribute]  # attribute keys order_by accepts
    order_kinds: frozenset[str]  # kinds order_by accepts (attribute, metric, param, tag)
    ops: Mapping[str, frozenset[str]]  # kind -> comparators (attributes: see Attribute)
    dataset_keys: frozenset[str] = frozenset()

    def kind_of(self, prefix: str | None) -> str | None:
        return "attribute" if prefix is None else self.prefixes.get(prefix)


def _grammar_error(what: str, text: str, problem: str, pos: int | None) -> GrammarError:
    return _fail(what, text, problem, pos)


def parse_filter(filter_string: str | None, grammar: Grammar) -> list[Comparison]:
    """The comparisons of an AND-ed filter for `grammar`'s entity; empty for no filter."""
    if filter_string is None or not filter_string.strip():
        return []
    if len(filter_string) > MAX_FILTER_LENGTH:
        # A search filter is a few comparisons; a megabyte of one costs memory and time for every
        # request in flight and ends in the database's own limits ("Expression tree is too large").
        raise InvalidParameterValue(f"Filter string is {len(filter_string)} characters long; at most "
                                    f"{MAX_FILTER_LENGTH} are accepted")
    text = filter_string
    result = []
    for raw in _parse_raw_filter(text):
        result.append(_check_comparison(raw, grammar, text))
    return result


def _check_comparison(raw: _RawComparison, g: Grammar, text: str) -> Comparison:
    ident, op = raw.ident, raw.op

    def fail(problem: str, pos: int | None) -> GrammarError:
        return _grammar_error("filter", text, problem, pos)

    kind = g.kind_of(ident.prefix)
    if kind is None:
        valid = ", ".join(sorted(g.prefixes))
        raise fail(f"unknown prefix {_show(ident.prefix)} in {_show(ident.text)} (valid: {valid})", ident.pos)
    key = ident.key
    if kind == "attribute":
        attr = g.attributes.get(key)
        if attr is None:
            valid = ", ".join(sorted(g.attributes))
            raise fail(f"unknown attribute {_show(key)} (valid: {valid})", ident.pos)
        allowed = attr.ops or (NUMERIC_OPS if attr.numeric else STRING_OPS | (LIST_OPS if attr.lists else frozenset()))
        numeric = attr.numeric
    elif kind == "dataset":
        if key not in g.dataset_keys:
            valid = ", ".join(sorted(g.dataset_keys))
            raise fail(f"unknown dataset field {_show(key)} (valid: {valid})", ident.pos)
        allowed, numeric = g.ops[kind], False
    else:
        allowed, numeric = g.ops[kind], kind == "metric"
    label = f"{kind} {_show(key)}"
    if op not in allowed:
        raise fail(f"comparator {op} is not allowed for {label}", raw.op_pos)
    if op in NULL_OPS:
        return Comparison(kind, key, op, None, ident.pos)
    if op in LIST_OPS:
        return Comparison(kind, key, op, raw.items, ident.pos)
    tok = raw.value
    if numeric:
        quoted_ok = kind == "attribute" and attr.quoted_number and tok.kind != NUMBER
        if tok.kind != NUMBER and not quoted_ok:
            raise fail(f"expected a number for {label}, got {tok.text}", tok.pos)
        try:
            value: int | float | str = _number(tok.value)
        except ValueError:
            raise fail(f"expected a number for {label}, got {tok.text}", tok.pos) from None
        if kind == "attribute" and attr.integer and not isinstance(value, int):
            raise fail(f"expected a whole number for {label}, got {tok.text}", tok.pos)
    else:
        if tok.kind == NUMBER:
            raise fail(f"expected a quoted string for {label}, got {tok.text}", tok.pos)
        value = tok.value
    return Comparison(kind, key, op, value, ident.pos)


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_order_by(clause: str, grammar: Grammar) -> OrderKey:
    """One order_by clause: ``<identifier> [ASC|DESC]``."""
    text = clause if isinstance(clause, str) else str(clause)
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidParameterValue(f"order_by clause is {len(text)} characters long; at most "
                                    f"{MAX_FILTER_LENGTH} are accepted")
    p = _Parser(text, "order_by")
    if p.tok.kind == END:
        raise _fail("order_by", text, "empty clause")
    ident = p.identifier()
    ascending = True
    if p.tok.is_keyword("ASC", "DESC"):
        ascending = p.take().text.upper() == "ASC"
    if p.tok.kind != END:
        raise p.error()
    kind = grammar.kind_of(ident.prefix)
    if kind is None or kind not in grammar.order_kinds:
        valid = ", ".join(sorted(k for k, v in grammar.prefixes.items() if v in grammar.order_kinds))
        raise _fail("order_by", text, f"cannot order by {_show(ident.text)} (valid prefixes: {valid or 'none'})",
                    ident.pos)
    if kind == "attribute" and ident.key not in grammar.order_attributes:
        valid = ", ".join(sorted(grammar.order_attributes))
        raise _fail("order_by", text, f"unknown attribute {_show(ident.key)} (valid: {valid})", ident.pos)
    return OrderKey(kind, ident.key, ascending)


def parse_order_by_list(order_by: list[str] | None, grammar: Grammar) -> list[OrderKey]:
    """All order_by clauses; naming the same field twice is an error, as in MLflow."""
    keys: list[OrderKey] = []
    seen: set[tuple[str, str]] = set()
    for clause in order_by or []:
        key = parse_order_by(clause, grammar)
        ident = (key.kind, grammar.order_attributes[key.key].column if key.kind == "attribute" else key.key)
        if ident in seen:
            raise InvalidParameterValue(f"order_by names {key.kind} {_show(key.key)} twice: {list(order_by)}")
        seen.add(ident)
        keys.append(key)
    return keys


# --- the five grammars ------------------------------------------------------------------------

_RUN_PREFIXES = {
    "metric": "metric", "metrics": "metric",
    "param": "param", "params": "param", "parameter": "param", "parameters": "param",
    "tag": "tag", "tags": "tag",
    "attribute": "attribute", "attributes": "attribute", "attr": "attribute", "run": "attribute",
    "dataset": "dataset", "datasets": "dataset",
}
_RUN_ATTRIBUTES = {
    "run_id": Attribute("run_uuid", lists=True),
    "run_name": Attribute("name"),  # filters go through the mlflow.runName tag, as in MLflow
    "run name": Attribute("name"), "Run name": Attribute("name"), "Run Name": Attribute("name"),
    "status": Attribute("status"),
    "user_id": Attribute("user_id"),
    "artifact_uri": Attribute("artifact_uri"),
    "start_time": Attribute("start_time", numeric=True),
    "created": Attribute("start_time", numeric=True), "Created": Attribute("start_time", numeric=True),
    "end_time": Attribute("end_time", numeric=True),
}
RUNS = Grammar(
    name="runs",
    prefixes=_RUN_PREFIXES,
    attributes=_RUN_ATTRIBUTES,
    order_attributes={k: v for k, v in _RUN_ATTRIBUTES.items() if k not in ("run name", "Run name", "Run Name")},
    order_kinds=frozenset({"attribute", "metric", "param", "tag"}),
    ops={"metric": NUMERIC_OPS, "param": STRING_OPS | NULL_OPS, "tag": STRING_OPS | NULL_OPS,
         "dataset": STRING_OPS | LIST_OPS},
    dataset_keys=frozenset({"name", "digest", "context"}),
)

_EXPERIMENT_ATTRIBUTES = {
    "name": Attribute("name"),
    "experiment_id": Attribute("experiment_id", lists=True, ops=frozenset({"=", "!=", "IN", "NOT IN"})),
    "creation_time": Attribute("creation_time", numeric=True, integer=True),
    "last_update_time": Attribute("last_update_time", numeric=True, integer=True),
}
EXPERIMENTS = Grammar(
    name="experiments",
    prefixes={"attribute": "attribute", "tag": "tag", "tags": "tag"},
    attributes=_EXPERIMENT_ATTRIBUTES,
    order_attributes=_EXPERIMENT_ATTRIBUTES,
    order_kinds=frozenset({"attribute"}),
    ops={"tag": STRING_OPS | NULL_OPS},
)

REGISTERED_MODELS = Grammar(
    name="registered models",
    prefixes={"attribute": "attribute", "tag": "tag", "tags": "tag"},
    attributes={"name": Attribute("name", lists=True)},
    order_attributes={"name": Attribute("name"), "timestamp": Attribute("last_updated_time"),
                      "last_updated_timestamp": Attribute("last_updated_time")},
    order_kinds=frozenset({"attribute"}),
    ops={"tag": STRING_OPS},
)

MODEL_VERSIONS = Grammar(
    name="model versions",
    prefixes={"attribute": "attribute", "tag": "tag", "tags": "tag"},
    attributes={
        "name": Attribute("name", lists=True),
        "run_id": Attribute("run_id", lists=True),
        "source_path": Attribute("source"),
        "version_number": Attribute("version", numeric=True, integer=True, quoted_number=True),
    },
    order_attributes={"name": Attribute("name"), "version_number": Attribute("version"),
                      "creation_timestamp": Attribute("creation_time"),
                      "last_updated_timestamp": Attribute("last_updated_time")},
    order_kinds=frozenset({"attribute"}),
    ops={"tag": STRING_OPS},
)

_LOGGED_MODEL_STRING = STRING_OPS | LIST_OPS
_LOGGED_MODEL_ATTRIBUTES = {
    "name": Attribute("name", lists=True),
    "model_id": Attribute("model_id", lists=True),
    "model_type": Attribute("model_type", lists=True),
    "source_run_id": Attribute("source_run_id", lists=True),
    # written as a name (READY), stored as a number: equality and lists only
    "status": Attribute("status", lists=True, ops=frozenset({"=", "!=", "IN", "NOT IN"})),
    "creation_timestamp": Attribute("creation_timestamp_ms", numeric=True),
    "creation_time": Attribute("creation_timestamp_ms", numeric=True),
    "creation_timestamp_ms": Attribute("creation_timestamp_ms", numeric=True),
    "last_updated_timestamp": Attribute("last_updated_timestamp_ms", numeric=True),
    "last_updated_time": Attribute("last_updated_timestamp_ms", numeric=True),
    "last_updated_timestamp_ms": Attribute("last_updated_timestamp_ms", numeric=True),
}
LOGGED_MODELS = Grammar(
    name="logged models",
    prefixes={"attributes": "attribute", "metrics": "metric", "params": "param", "tags": "tag"},
    attributes=_LOGGED_MODEL_ATTRIBUTES,
    order_attributes=_LOGGED_MODEL_ATTRIBUTES,
    order_kinds=frozenset({"attribute", "metric"}),
    ops={"metric": NUMERIC_OPS, "param": _LOGGED_MODEL_STRING, "tag": _LOGGED_MODEL_STRING},
)
