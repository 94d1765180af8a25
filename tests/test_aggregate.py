"""@aggregate: inputs gathered over many records into dicts keyed by record."""

import dataclasses
import logging

import pytest

from parafactory import ExperimentParameters, Record, aggregate, stage


@dataclasses.dataclass
class Params(ExperimentParameters):
    value: int = 0


@pytest.fixture
def manager(make_manager):
    return make_manager("aggregate", dry=True)


@stage(inputs=None, outputs=["score"])
def score(record):
    return record.params.value * 10


@aggregate(inputs=["score"], outputs=["seen", "best"])
def best_score(record, records, score):
    assert all(isinstance(key, Record) for key in score)
    seen = [(r.name, value) for r, value in score.items()]
    return {"records": [r.name for r in records], "scores": seen}, max(score.values())


@stage(inputs=["best"], outputs=["best_doubled"])
def double_best(record, best):
    return best * 2


def test_inputs_are_dicts_keyed_by_record(manager):
    a = score(Record(manager, Params(name="a", value=1)))
    b = score(Record(manager, Params(name="b", value=3)))
    result = best_score(Record(manager, None), [a, b])
    assert result.state["seen"]["scores"] == [("a", 10), ("b", 30)]
    assert result.state["best"] == 30
    assert result.output == (result.state["seen"], 30)


def test_record_lacking_input_is_warned_about_and_left_out(manager, caplog):
    a = score(Record(manager, Params(name="has-score", value=1)))
    b = Record(manager, Params(name="lacks-score", value=9))
    with caplog.at_level(logging.WARNING):
        result = best_score(Record(manager, None), [a, b])
    assert result.state["seen"] == {
        "records": ["has-score", "lacks-score"],
        "scores": [("has-score", 10)],
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("lacks-score" in m and "score" in m for m in warnings), warnings
    assert not any("has-score" in m for m in warnings)


def test_records_none_means_every_other_record_of_the_manager(manager):
    for name, value in [("x", 1), ("y", 2), ("z", 5)]:
        score(Record(manager, Params(name=name, value=value)))
    own = Record(manager, None)
    own.state["score"] = 1000  # its own state must not be aggregated
    best_score(own)
    assert own.state["seen"] == {
        "records": ["x", "y", "z"],
        "scores": [("x", 10), ("y", 20), ("z", 50)],
    }
    assert own.state["best"] == 50


def test_params_free_record_continues_through_regular_stages(manager):
    score(Record(manager, Params(name="only", value=4)))
    result = double_best(best_score(Record(manager, None)))
    assert result.params is None
    assert result.state["best_doubled"] == 80
    assert result.stages == ["best_score", "double_best"]
