"""The filter and order_by grammar: accepted forms, and errors that name the bad token and where."""

from __future__ import annotations

import pytest

from trackops.errors import InvalidParameterValue
from trackops.stores.filter_grammar import (
    EXPERIMENTS,
    LOGGED_MODELS,
    MODEL_VERSIONS,
    REGISTERED_MODELS,
    RUNS,
    Comparison,
    GrammarError,
    OrderKey,
    parse_filter,
    parse_order_by,
    parse_order_by_list,
    tokenize,
)


def one(filter_string, grammar=RUNS):
    (comparison,) = parse_filter(filter_string, grammar)
    return (comparison.kind, comparison.key, comparison.op, comparison.value)


@pytest.mark.parametrize("text, expected", [
    ("metrics.acc > 1", ("metric", "acc", ">", 1)),
    ("metric.acc>=0.5", ("metric", "acc", ">=", 0.5)),
    ("metrics.acc != -1.5", ("metric", "acc", "!=", -1.5)),
    ("metrics.acc < 1e-3", ("metric", "acc", "<", 0.001)),
    ("metrics.acc <= .5", ("metric", "acc", "<=", 0.5)),
    ("metrics.acc = 5.", ("metric", "acc", "=", 5.0)),
    ("metrics.train.loss < 2", ("metric", "train.loss", "<", 2)),
    ("metrics.`val loss` < 2", ("metric", "val loss", "<", 2)),
    ('metrics."val/loss" < 2', ("metric", "val/loss", "<", 2)),
    ("metrics.2fast = 1", ("metric", "2fast", "=", 1)),
    ("`metrics`.acc = 1", ("metric", "acc", "=", 1)),
    ("params.lr = '0.01'", ("param", "lr", "=", "0.01")),
    ('param.lr = "0.01"', ("param", "lr", "=", "0.01")),
    ("parameters.`my-param` != 'x'", ("param", "my-param", "!=", "x")),
    ("params.p like 'a%'", ("param", "p", "LIKE", "a%")),
    ("params.p ILike 'A%'", ("param", "p", "ILIKE", "A%")),
    ("params.p is null", ("param", "p", "IS NULL", None)),
    ("params.p IS NOT NULL", ("param", "p", "IS NOT NULL", None)),
    ("tags.mlflow.runName = 'x'", ("tag", "mlflow.runName", "=", "x")),
    ("tag.`mlflow.prompt.is_prompt` != 'true'", ("tag", "mlflow.prompt.is_prompt", "!=", "true")),
    ("tags.and = ''", ("tag", "and", "=", "")),
    ("tags.t = 'it''s'", ("tag", "t", "=", "it''s")),  # verbatim between the quotes, as MLflow
    ("status = 'FINISHED'", ("attribute", "status", "=", "FINISHED")),
    ("attributes.start_time >= 10", ("attribute", "start_time", ">=", 10)),
    ("attr.end_time < 2.5", ("attribute", "end_time", "<", 2.5)),
    ("run.run_name = 'x'", ("attribute", "run_name", "=", "x")),
    ("`Run name` = 'x'", ("attribute", "Run name", "=", "x")),
    ('"run name" = \'x\'', ("attribute", "run name", "=", "x")),
    ("created > 5", ("attribute", "created", ">", 5)),
    ("run_id IN ('a', 'b',)", ("attribute", "run_id", "IN", ("a", "b"))),
    ("attribute.run_id not in (\"a\")", ("attribute", "run_id", "NOT IN", ("a",))),
    ("datasets.name = 'd'", ("dataset", "name", "=", "d")),
    ("dataset.digest IN ('a')", ("dataset", "digest", "IN", ("a",))),
    ("datasets.context LIKE 'train%'", ("dataset", "context", "LIKE", "train%")),
])
def test_run_filter_forms(text, expected):
    assert one(text) == expected


def test_comparisons_are_joined_by_and_in_any_case_and_remember_positions():
    parsed = parse_filter("metrics.a > 1 and params.p = 'x'\n AND tags.t != 'y'", RUNS)
    assert [(c.kind, c.position) for c in parsed] == [("metric", 0), ("param", 18), ("tag", 38)]
    assert parse_filter("", RUNS) == []
    assert parse_filter(None, RUNS) == []
    assert parse_filter("   ", RUNS) == []


@pytest.mark.parametrize("text, message", [
    ("metrics.acc >> 1", "unexpected token '>' at position 13"),
    ("metrics.acc == 1", "unexpected token '=' at position 13"),
    ("metrics.acc <> 1", "unexpected token '>' at position 13"),
    ("metrics.acc", "unexpected end of filter at position 11"),
    ("metrics.acc >", "unexpected end of filter at position 13"),
    ("metrics.acc > 1 AND", "unexpected end of filter at position 19"),
    ("AND metrics.acc > 1", "unexpected token 'AND' at position 0"),
    ("metrics.a > 1 AND AND metrics.b > 1", "unexpected token 'AND' at position 18"),
    ("metrics.a > 1 OR metrics.b > 1", "unexpected token 'OR' at position 14"),
    ("(metrics.a > 1)", "unexpected token '(' at position 0"),
    ("metrics.a > 1; metrics.b > 1", "unexpected character ';' at position 13"),
    ("= 1", "unexpected token '=' at position 0"),
    ("params.p = 'x' 'y'", "unexpected token \"'y'\" at position 15"),
    ("params.p = x", "unexpected token 'x' at position 11"),
    ("params.p = 'abc", "unterminated quote \"'\" at position 11"),
    ("tags.`abc = 'x'", "unterminated quote '`' at position 5"),
    ("metrics.m>1and params.p='x'", "invalid number '1and' at position 10"),
    ("metrics.m = 0x10", "invalid number '0x10' at position 12"),
    ("metrics.m = +1", "unexpected character '+' at position 12"),
    ("params.my-param = 'x'", "unexpected character '-' at position 9"),
    ("params.p NOT LIKE 'x'", "unexpected token 'LIKE' at position 13"),
    ("params.p IS 'x'", "unexpected token \"'x'\" at position 12"),
    ("metrics.m BETWEEN 1 AND 2", "unexpected token 'BETWEEN' at position 10"),
    ("run_id IN 'a'", "unexpected token \"'a'\" at position 10"),
    ("run_id IN ('a' 'b')", "unexpected token \"'b'\" at position 15"),
    ("run_id IN ()", "empty list at position 11"),
    ("run_id IN ('a', 1)", "expected a quoted string in the list, got 1 at position 16"),
    ("metrics.x.`y` = 1", "a quoted key must be the whole key, got '`y`' at position 10"),
    ("metrics.acc = 1 -- note", "unexpected character '-' at position 16"),
])
def test_malformed_filter_names_the_token_and_position(text, message):
    with pytest.raises(InvalidParameterValue) as caught:
        parse_filter(text, RUNS)
    assert str(caught.value) == f'Invalid filter "{text}": {message}'
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert caught.value.http_status == 400


@pytest.mark.parametrize("text, message", [
    ("metrics.acc > '1'", "expected a number for metric 'acc', got '1' at position 14"),
    ("params.p = 1", "expected a quoted string for param 'p', got 1 at position 11"),
    ("tags.t != 2.5", "expected a quoted string for tag 't', got 2.5 at position 10"),
    ("start_time > 'x'", "expected a number for attribute 'start_time', got 'x' at position 13"),
    ("status = 1", "expected a quoted string for attribute 'status', got 1 at position 9"),
    ("metrics.m LIKE '1'", "comparator LIKE is not allowed for metric 'm' at position 10"),
    ("metrics.m IS NULL", "comparator IS NULL is not allowed for metric 'm' at position 10"),
    ("start_time LIKE 'x'", "comparator LIKE is not allowed for attribute 'start_time' at position 11"),
    ("status IN ('a')", "comparator IN is not allowed for attribute 'status' at position 7"),
    ("params.p IN ('a')", "comparator IN is not allowed for param 'p' at position 9"),
    ("end_time IS NULL", "comparator IS NULL is not allowed for attribute 'end_time' at position 9"),
    ("status > 'a'", "comparator > is not allowed for attribute 'status' at position 7"),
    ("lifecycle_stage = 'active'", "unknown attribute 'lifecycle_stage' (valid: "),
    ("foo.bar = 'x'", "unknown prefix 'foo' in 'foo.bar' (valid: attr, attribute, attributes, "),
    ("METRICS.acc > 1", "unknown prefix 'METRICS'"),
    ("datasets.size = 'x'", "unknown dataset field 'size' (valid: context, digest, name) at position 0"),
])
def test_filter_type_and_comparator_rules_for_runs(text, message):
    with pytest.raises(GrammarError) as caught:
        parse_filter(text, RUNS)
    assert str(caught.value).startswith(f'Invalid filter "{text}": {message}')


def test_experiment_filter_rules():
    assert one("name LIKE 'a%'", EXPERIMENTS) == ("attribute", "name", "LIKE", "a%")
    assert one("attribute.creation_time > 5", EXPERIMENTS) == ("attribute", "creation_time", ">", 5)
    assert one("experiment_id IN ('1', '2')", EXPERIMENTS) == ("attribute", "experiment_id", "IN", ("1", "2"))
    assert one("tags.k IS NULL", EXPERIMENTS) == ("tag", "k", "IS NULL", None)
    for bad, message in [
        ("attributes.name = 'x'", "unknown prefix 'attributes'"),
        ("params.p = 'x'", "unknown prefix 'params'"),
        ("name IN ('a')", "comparator IN is not allowed for attribute 'name'"),
        ("experiment_id > '1'", "comparator > is not allowed for attribute 'experiment_id'"),
        ("creation_time > 5.5", "expected a whole number for attribute 'creation_time', got 5.5"),
    ]:
        with pytest.raises(GrammarError, match=message):
            parse_filter(bad, EXPERIMENTS)


def test_registry_filter_rules():
    assert one("name IN ('a', 'b')", REGISTERED_MODELS) == ("attribute", "name", "IN", ("a", "b"))
    assert one("tag.`k` != 'v'", REGISTERED_MODELS) == ("tag", "k", "!=", "v")
    assert one("version_number = '3'", MODEL_VERSIONS) == ("attribute", "version_number", "=", 3)
    assert one("version_number > 1", MODEL_VERSIONS) == ("attribute", "version_number", ">", 1)
    assert one("run_id IN ('r')", MODEL_VERSIONS) == ("attribute", "run_id", "IN", ("r",))
    assert one("source_path LIKE 'a%'", MODEL_VERSIONS) == ("attribute", "source_path", "LIKE", "a%")
    for grammar, bad, message in [
        (REGISTERED_MODELS, "tags.k IS NULL", "comparator IS NULL is not allowed for tag 'k'"),
        (REGISTERED_MODELS, "creation_timestamp > 5", "unknown attribute 'creation_timestamp'"),
        (REGISTERED_MODELS, "name > 'a'", "comparator > is not allowed for attribute 'name'"),
        (MODEL_VERSIONS, "version_number > 1.5", "expected a whole number for attribute 'version_number'"),
        (MODEL_VERSIONS, "source_path IN ('a')", "comparator IN is not allowed for attribute 'source_path'"),
        (MODEL_VERSIONS, "current_stage = 'x'", "unknown attribute 'current_stage'"),
    ]:
        with pytest.raises(GrammarError, match=message):
            parse_filter(bad, grammar)


def test_logged_model_filter_rules():
    assert one("metrics.acc > 0.5", LOGGED_MODELS) == ("metric", "acc", ">", 0.5)
    assert one("params.p IN ('a')", LOGGED_MODELS) == ("param", "p", "IN", ("a",))
    assert one("creation_time > 1", LOGGED_MODELS) == ("attribute", "creation_time", ">", 1)
    assert one("attributes.status = 'READY'", LOGGED_MODELS) == ("attribute", "status", "=", "READY")
    with pytest.raises(GrammarError, match="unknown prefix 'metric'"):
        parse_filter("metric.acc > 1", LOGGED_MODELS)
    with pytest.raises(GrammarError, match="comparator LIKE is not allowed for attribute 'status'"):
        parse_filter("status LIKE 'R%'", LOGGED_MODELS)


@pytest.mark.parametrize("text, expected", [
    ("metrics.acc DESC", OrderKey("metric", "acc", False)),
    ("metrics.acc desc", OrderKey("metric", "acc", False)),
    ("params.p", OrderKey("param", "p", True)),
    ("attributes.start_time ASC", OrderKey("attribute", "start_time", True)),
    ("tags.`x y`", OrderKey("tag", "x y", True)),
    ('tags."x y"  DESC', OrderKey("tag", "x y", False)),
    ("metrics.a.b asc", OrderKey("metric", "a.b", True)),
    ("created", OrderKey("attribute", "created", True)),
    ("run_name DESC", OrderKey("attribute", "run_name", False)),
])
def test_order_by_forms(text, expected):
    assert parse_order_by(text, RUNS) == expected


@pytest.mark.parametrize("grammar, text, message", [
    (RUNS, "metrics.acc UP", "unexpected token 'UP' at position 12"),
    (RUNS, "metrics.acc DESC ASC", "unexpected token 'ASC' at position 17"),
    (RUNS, "metrics.acc, params.p", "unexpected token ',' at position 11"),
    (RUNS, "", "empty clause"),
    (RUNS, "lifecycle_stage", "unknown attribute 'lifecycle_stage'"),
    (RUNS, "datasets.name", "cannot order by 'datasets.name'"),
    (EXPERIMENTS, "tags.x", "cannot order by 'tags.x' (valid prefixes: attribute)"),
    (REGISTERED_MODELS, "creation_timestamp", "unknown attribute 'creation_timestamp'"),
    (MODEL_VERSIONS, "run_id", "unknown attribute 'run_id'"),
])
def test_bad_order_by_is_invalid_parameter_value(grammar, text, message):
    with pytest.raises(GrammarError) as caught:
        parse_order_by(text, grammar)
    assert str(caught.value).startswith(f'Invalid order_by "{text}": {message}')


def test_order_by_list_refuses_the_same_field_twice():
    assert parse_order_by_list(["metrics.a", "params.a"], RUNS) == [OrderKey("metric", "a"), OrderKey("param", "a")]
    with pytest.raises(InvalidParameterValue, match="twice"):
        parse_order_by_list(["start_time", "created DESC"], RUNS)
    with pytest.raises(InvalidParameterValue, match="twice"):
        parse_order_by_list(["timestamp", "last_updated_timestamp"], REGISTERED_MODELS)


def test_tokenizer_keeps_positions_and_quoted_text():
    kinds = [(tok.kind, tok.text, tok.pos) for tok in tokenize("tags.`a b` LIKE \"x%\"")]
    assert kinds == [("word", "tags", 0), (".", ".", 4), ("backquoted", "`a b`", 5), ("word", "LIKE", 11),
                     ("dquoted", '"x%"', 16), ("end", "", 20)]


# --- the same answers as MLflow's own parser --------------------------------------------------

ACCEPTED_BY_BOTH = [
    "metrics.acc > 1", "metrics.train.loss < 0.5", "metric.acc>=1", "metrics.`a b` = 1", 'metrics."a b" = 1',
    "metrics.acc > -1", "metrics.acc > 1e-3", "metrics.acc > .5", "params.p = 'x'", 'params.p = "x"',
    "params.p like 'a%'", "params.p ILIKE 'a%'", "params.p IS NULL", "params.p is not null", "tags.t IS NULL",
    "status = 'FINISHED'", "run_id IN ('a','b')", "run_id not in ('a')", "attr.start_time > 5",
    "run.run_name = 'x'", "`Run name` = 'x'", "created > 5", "params.p = 'x' and metrics.m > 1",
    "params.`my-param` = 'x'", "tags.mlflow.runName = 'x'", "tag.`mlflow.prompt.is_prompt` != 'true'",
    "datasets.name = 'd'", "dataset.digest IN ('a')", "datasets.context = 'train'", "params.p = 'it''s'",
    "metrics.m.x.y = 2", "metrics.`m.x` = 2", "tags.\"a.b\" = 'x'", "metrics.m=-1.5", "metrics.2fast = 1",
    "tags.t = ''", "run_id IN ('a','b',)", "`attributes`.status = 'x'", "tags.and = 'x'",
    "params.p = 'x' \n AND metrics.m > 1 AND tags.t != 'y'", "user_id = 'x'", "artifact_uri LIKE '%x%'",
]
REJECTED_BY_BOTH = [
    "metrics.acc > '1'", "params.p = 1", "metrics.m IS NULL", "attributes.status IN ('A','B')",
    "start_time > 'x'", "params.p = 'x' OR metrics.m > 1", "metrics.acc", "metrics.acc >", "= 1",
    "params.my-param = 'x'", "foo.bar = 'x'", "lifecycle_stage = 'active'", "run_id IN ()", "run_id IN ('a', 1)",
    "metrics.m = 1; metrics.n = 2", "(metrics.m = 1)", "params.p = x", "params.p = 'x' 'y'", "metrics.m = NULL",
    "metrics.m>1and params.p='x'", "METRICS.m > 1", "metrics.m = 0x10", "metrics.m = +1", "params.p IS 'x'",
    "metrics.m = 1 -- comment", "metrics.m between 1 and 2", "params.p IN ('a')", "metrics.m = 1e",
]


def _mlflow_search_utils():
    pytest.importorskip("mlflow")
    from mlflow.utils.search_utils import SearchUtils

    return SearchUtils


@pytest.mark.compat
@pytest.mark.parametrize("text", ACCEPTED_BY_BOTH)
def test_parses_like_mlflow(text):
    theirs = _mlflow_search_utils().parse_search_filter(text)
    kinds = {"parameter": "param"}
    expected = [
        Comparison(kinds.get(c["type"], c["type"]), c["key"], c["comparator"].upper(),
                   float(c["value"]) if c["type"] == "metric" else c["value"])
        for c in theirs
    ]
    ours = [dataclass_without_position(c) for c in parse_filter(text, RUNS)]
    assert ours == expected


def dataclass_without_position(c: Comparison) -> Comparison:
    value = float(c.value) if c.kind == "metric" else c.value
    return Comparison(c.kind, c.key, c.op, value)


@pytest.mark.compat
@pytest.mark.parametrize("text", REJECTED_BY_BOTH)
def test_rejects_like_mlflow(text):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        _mlflow_search_utils().parse_search_filter(text)
    with pytest.raises(InvalidParameterValue):
        parse_filter(text, RUNS)
