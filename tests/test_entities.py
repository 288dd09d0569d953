"""`entities.builder`: the fast constructors a search page uses make the same frozen entities as the classes."""

from __future__ import annotations

import dataclasses

import pytest

from trackops import entities as e

SAMPLES = [
    (e.RunInfo, ("r1", "0", "u", "RUNNING", 1, None, "active", "mlflow-artifacts:/0/r1", "name")),
    (e.Metric, ("loss", 0.25, 5, 2, None, None, None, None)),
    (e.Param, ("p", "1")),
    (e.RunTag, ("t", "v")),
    (e.RunData, ([e.Metric("m", 1.0, 1)], [e.Param("p", "v")], [])),
    (e.RunInputs, ([], [e.LoggedModelInput("m-1")])),
    (e.RunOutputs, ([e.LoggedModelOutput("m-2", 3)],)),
]


@pytest.mark.parametrize("cls, values", SAMPLES, ids=[c.__name__ for c, _ in SAMPLES])
def test_a_built_entity_equals_the_constructed_one_and_stays_frozen(cls, values):
    built, made = e.builder(cls)(*values), cls(*values)
    assert type(built) is cls
    assert dataclasses.astuple(built) == dataclasses.astuple(made)
    assert repr(built) == repr(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, dataclasses.fields(cls)[0].name, "changed")


def test_built_entities_compare_and_hash_as_constructed_ones():
    info = ("r1", "0", "u", "FINISHED", 1, 2, "active", None, None)
    assert e.builder(e.RunInfo)(*info) == e.RunInfo(*info)
    assert hash(e.builder(e.RunInfo)(*info)) == hash(e.RunInfo(*info))
    run = e.builder(e.Run)(e.RunInfo(*info), e.RunData(), e.RunInputs(), e.RunOutputs())
    assert run == e.Run(e.RunInfo(*info)) and run.info.run_uuid == "r1"


def test_a_builder_takes_every_field_and_nothing_else():
    with pytest.raises(TypeError):
        e.builder(e.Param)("only-key")
    with pytest.raises(TypeError):
        e.builder(e.Param)("k", "v", "extra")
